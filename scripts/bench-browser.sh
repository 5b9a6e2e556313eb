#!/usr/bin/env bash
# Browser benchmark: isosock's wasm `Conn` against the JS `WebSocket` in one browser engine:
# headless Chromium by default (Debian's, through playwright-core); `--browser firefox` for
# headless Firefox ESR (geckodriver) or `--browser webkit` for WebKitGTK's MiniBrowser
# (WebKitWebDriver, on an Xvfb display of its own), both through selenium-webdriver
# (tests/js/browsers.mjs). Nothing downloads a browser or a driver.
#
# Builds bench/browser (wasm-release profile, wasm-bindgen --target web, npm binaryen's
# wasm-opt -Oz; Debian's binaryen breaks wasm-bindgen output), starts the release build of the
# native echo server, and runs bench/browser/run.mjs: echo loops of 16 B, 1 KiB and 64 KiB
# binary messages, ping-pong and pipelined, isosock and raw JS alternating (A B A B). Prints
# a markdown table of messages/s and MB/s medians and isosock's ratio to raw JS.
#
# Extra arguments go to run.mjs: --browser chromium|firefox|webkit (default chromium), --rounds
# N (default 7), --scale X (message counts, default 1; 0.1 for a smoke run), --window W
# (default 16), --json FILE, --profile FILE (Chromium only: JS calls and allocations per
# message, and a V8 CPU profile summary; builds with function names and the counting allocator,
# so take the table's numbers from a run without it). Benchmarks measure: nothing here asserts
# a timing. Needs what scripts/setup.sh installs; installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="$ROOT/target/bench-browser"
WASM_OPT="$ROOT/tests/js/node_modules/.bin/wasm-opt"
CRATE=isosock_bench_browser

die() { echo "bench-browser.sh: $*" >&2; exit 1; }
[ -x "$WASM_OPT" ] || die "$WASM_OPT is missing; run scripts/setup.sh"
for pkg in playwright-core selenium-webdriver; do
  [ -d "tests/js/node_modules/$pkg" ] || die "$pkg is missing; run scripts/setup.sh"
done
want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' bench/browser/Cargo.toml | head -1)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
[ "$want" = "$have" ] || die "wasm-bindgen CLI is '${have:-missing}', the crate pins $want; run scripts/setup.sh"

opt_flags=(-Oz)
features=()
for a in "$@"; do
  # Keep the name section so the CPU profile shows Rust function names, and count allocations.
  if [ "$a" = --profile ]; then opt_flags+=(-g); features=(--features count-allocs); fi
done

echo "bench-browser.sh: building bench/browser and the echo server (release)" >&2
cargo build --quiet --profile wasm-release --target wasm32-unknown-unknown -p isosock-bench-browser \
  "${features[@]}"
rm -rf "$OUT/pkg"
wasm-bindgen --target web --out-dir "$OUT/pkg" \
  "target/wasm32-unknown-unknown/wasm-release/$CRATE.wasm"
"$WASM_OPT" "${opt_flags[@]}" "$OUT/pkg/${CRATE}_bg.wasm" -o "$OUT/pkg/${CRATE}_bg.wasm"
cargo build --quiet --release --example echo_server

# shellcheck source=lib/echo-server.sh
. scripts/lib/echo-server.sh
# Without permessage-deflate, so the figures measure the WebSocket path alone (as before the
# echo server compressed).
ISOSOCK_ECHO_COMPRESSION=off start_echo_server ./target/release/examples/echo_server bench-browser.sh
url="$ECHO_URL"

node bench/browser/run.mjs --url "$url" --dir "$OUT" "$@"
