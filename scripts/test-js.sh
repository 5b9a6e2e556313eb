#!/usr/bin/env bash
# Tests the npm package as users get it: builds and packs it (scripts/build-js.sh), starts the
# native echo server, then runs tests/js with Node's test runner: the tarball installed into an
# empty project and used from Node.js, its TypeScript declarations checked by tsc, and the same
# package loaded by a page, directly through an import map and bundled by Vite (built once), in
# three browser engines (tests/js/browsers.mjs): headless Chromium (Debian's chromium, through
# playwright-core), headless Firefox ESR (through geckodriver) and WebKitGTK's MiniBrowser
# (through WebKitWebDriver, on an Xvfb display the tests start), the last two driven by
# selenium-webdriver. Each browser test runs once per engine, the engine in its name;
# ISOSOCK_BROWSERS=chromium,firefox,webkit (the default) picks fewer.
#
# Needs what scripts/setup.sh installs; installs nothing itself (nothing downloads a browser or
# a driver). Extra arguments go to `node --test` (e.g. a test file).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/build-js.sh
cargo build --quiet --example echo_server

# shellcheck source=lib/echo-server.sh
. scripts/lib/echo-server.sh
start_echo_server ./target/debug/examples/echo_server test-js.sh
url="$ECHO_URL"
echo "test-js.sh: echo server at $url"

# Node.js 22+ has a global WebSocket; 20 and 21 need a flag (the test files spawn children
# with the right flags themselves).
flags=()
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
    flags+=(--experimental-websocket)
fi
if [ $# -eq 0 ]; then set -- tests/js/; fi
ISOSOCK_ECHO_URL="$url" node "${flags[@]}" --test --test-timeout=120000 "$@"
