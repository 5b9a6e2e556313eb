#!/usr/bin/env bash
# The chat demo's end-to-end test: builds the wasm client (www/pkg) and the chat server once,
# then runs tests/e2e/chat.test.mjs (node --test), which drives two pages through a chat, a
# server kill and a restart in each of three browser engines (tests/js/browsers.mjs): headless
# Chromium (Debian's, through playwright-core), headless Firefox ESR (geckodriver) and
# WebKitGTK's MiniBrowser (WebKitWebDriver, on an Xvfb display the test starts), the last two
# through selenium-webdriver. ISOSOCK_BROWSERS=chromium,firefox,webkit (the default) picks fewer.
#
# Needs node >= 20, npm, the browsers and drivers, the wasm32 target, wasm-bindgen-cli and
# tests/js's npm packages, which tests/e2e uses too (scripts/setup.sh installs them all; nothing
# here downloads a browser or a driver).
# Screenshots: tests/artifacts/chat-<engine>-a.png and chat-<engine>-b.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
modules=$root/tests/js/node_modules

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test-e2e: $tool not found on PATH" >&2; exit 1; }
done

for pkg in playwright-core selenium-webdriver; do
  if [ ! -d "$modules/$pkg" ]; then
    echo "test-e2e: tests/js/node_modules/$pkg is missing; run scripts/setup.sh" >&2
    exit 1
  fi
done

"$root/scripts/build-www.sh"
cargo build --quiet --manifest-path "$root/Cargo.toml" --example chat_server --features hyper

cd "$root"
exec node --test tests/e2e/chat.test.mjs
