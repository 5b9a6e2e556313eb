#!/usr/bin/env bash
# Runs the browser tests (tests/wasm) in headless Chromium, then in headless Firefox, against
# the native echo server.
#
# Needs what the set-up script installs (wasm32 target, wasm-bindgen-cli matching the crate's
# wasm-bindgen, chromium + chromedriver, firefox-esr + geckodriver); installs nothing itself
# and fails if a browser or driver is missing. Extra arguments go to the test runner, e.g.
# `scripts/test-wasm.sh --test wasm -- writer`.
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
# .cargo/config.toml; GECKODRIVER, when set, takes precedence.
for tool in chromedriver geckodriver firefox-esr; do
    command -v "$tool" >/dev/null || { echo "test-wasm.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
echo "test-wasm.sh: Chromium ($(chromium --version 2>/dev/null | tail -1))"
cargo test --target wasm32-unknown-unknown --all-features "$@"
echo "test-wasm.sh: Firefox ($(firefox-esr --version 2>/dev/null | tail -1))"
GECKODRIVER="$(command -v geckodriver)" cargo test --target wasm32-unknown-unknown --all-features "$@"

# The same browser tests the way wasm-pack users run them. `--mode no-install` uses the
# wasm-bindgen-cli on PATH (set-up installs the matching version) instead of downloading one.
if [ $# -eq 0 ]; then
    wasm-pack test --headless --chrome --mode no-install . --test wasm --all-features
    wasm-pack test --headless --firefox --mode no-install . --test wasm --all-features
fi
