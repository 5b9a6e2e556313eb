#!/usr/bin/env bash
# Runs the browser tests (tests/wasm) in headless Chromium against the native echo server.
#
# Needs what the set-up script installs (wasm32 target, wasm-bindgen-cli matching the crate's
# wasm-bindgen, chromium + chromedriver); installs nothing itself. Extra arguments go to the
# test runner, e.g. `scripts/test-wasm.sh --test wasm -- writer`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --example echo_server
server_out="$(mktemp)"
./target/debug/examples/echo_server 0 >"$server_out" 2>/dev/null &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -f "$server_out"
}
trap cleanup EXIT

url=""
for _ in $(seq 1 100); do
    url="$(sed -n 's/^listening on \(ws:\/\/[^ ]*\).*/\1/p' "$server_out" | head -n 1)"
    [ -n "$url" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "test-wasm.sh: the echo server exited before listening" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "test-wasm.sh: the echo server did not print its address within 10 s" >&2
    exit 1
fi
echo "test-wasm.sh: echo server at $url"

export ISOSOCK_ECHO_URL="$url"
# Every wasm test target: the library's unit tests, tests/wasm (tests/native is empty on
# wasm32) and the doc tests, which Rust >= 1.89 builds for the target too. Every feature,
# so the json and protobuf scenarios run in the browser as well.
cargo test --target wasm32-unknown-unknown --all-features "$@"

# The same browser tests the way wasm-pack users run them. `--mode no-install` uses the
# wasm-bindgen-cli on PATH (set-up installs the matching version) instead of downloading one.
if [ $# -eq 0 ]; then
    wasm-pack test --headless --chrome --mode no-install . --test wasm --all-features
fi
