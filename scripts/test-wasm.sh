#!/usr/bin/env bash
# Runs the browser tests (tests/wasm, and the library's wasm unit and doc tests; the framework
# hooks' tests in crates/) in headless Chromium, Firefox ESR and WebKitGTK (Safari's engine),
# against the native echo server: through wasm-bindgen-test-runner (`cargo test`), and
# tests/wasm also through `wasm-pack test`.
#
# Needs what the set-up script installs (wasm32 target, wasm-bindgen-cli matching the crate's
# wasm-bindgen, chromium + chromedriver, firefox-esr + geckodriver, WebKitWebDriver + Xvfb);
# installs nothing itself and fails if a browser or driver is missing. Extra arguments go to
# the test runner, e.g. `scripts/test-wasm.sh --test wasm -- writer`. ISOSOCK_BROWSERS picks
# engines, comma-separated (default "chromium,firefox,webkit"), as for the JavaScript suites.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --example echo_server
# shellcheck source=lib/echo-server.sh
. scripts/lib/echo-server.sh
start_echo_server ./target/debug/examples/echo_server test-wasm.sh
url="$ECHO_URL"
echo "test-wasm.sh: echo server at $url"

export ISOSOCK_ECHO_URL="$url"
# Every wasm test target: the library's unit tests, tests/wasm (tests/native is empty on
# wasm32) and the doc tests, which Rust >= 1.89 builds for the target too. Every feature,
# so the json and protobuf scenarios run in the browser as well.
# The runner drives the browser whose driver variable is set: CHROMEDRIVER comes from
# .cargo/config.toml; GECKODRIVER or SAFARIDRIVER, when set, takes precedence. WebKitWebDriver
# starts MiniBrowser, which has no working headless mode (session creation hangs), so it runs
# under Xvfb; the runner sends Safari no capabilities, so webdriver.json plays no part there.
for tool in chromedriver geckodriver firefox-esr WebKitWebDriver xvfb-run; do
    command -v "$tool" >/dev/null || { echo "test-wasm.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
# The framework hooks' browser tests (crates/), run with the library's when no arguments narrow
# the run.
HOOKS=(-p isosock-leptos -p isosock-yew)
for engine in $(tr ',' ' ' <<<"${ISOSOCK_BROWSERS:-chromium,firefox,webkit}"); do
    case "$engine" in
        chromium)
            echo "test-wasm.sh: Chromium ($(chromium --version 2>/dev/null | tail -1))"
            cargo test --target wasm32-unknown-unknown --all-features "$@"
            if [ $# -eq 0 ]; then
                cargo test --target wasm32-unknown-unknown --all-features "${HOOKS[@]}"
                wasm-pack test --headless --chrome --mode no-install . --test wasm --all-features
            fi
            ;;
        firefox)
            echo "test-wasm.sh: Firefox ($(firefox-esr --version 2>/dev/null | tail -1))"
            export GECKODRIVER="$(command -v geckodriver)"
            cargo test --target wasm32-unknown-unknown --all-features "$@"
            if [ $# -eq 0 ]; then
                cargo test --target wasm32-unknown-unknown --all-features "${HOOKS[@]}"
                wasm-pack test --headless --firefox --mode no-install . --test wasm --all-features
            fi
            unset GECKODRIVER
            ;;
        webkit)
            echo "test-wasm.sh: WebKitGTK $(dpkg-query -W -f '${Version}' webkit2gtk-driver 2>/dev/null) (MiniBrowser under Xvfb)"
            export SAFARIDRIVER="$(command -v WebKitWebDriver)"
            xvfb-run -a cargo test --target wasm32-unknown-unknown --all-features "$@"
            if [ $# -eq 0 ]; then
                xvfb-run -a cargo test --target wasm32-unknown-unknown --all-features "${HOOKS[@]}"
                xvfb-run -a wasm-pack test --headless --safari \
                    --safaridriver "$SAFARIDRIVER" --mode no-install . --test wasm --all-features
            fi
            unset SAFARIDRIVER
            ;;
        *) echo "test-wasm.sh: unknown engine '$engine' (chromium, firefox, webkit)" >&2; exit 1 ;;
    esac
done
# `wasm-pack test --mode no-install` (above) uses the wasm-bindgen-cli on PATH (set-up
# installs the matching version) instead of downloading one.
