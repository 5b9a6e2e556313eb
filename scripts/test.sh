#!/usr/bin/env bash
# Installs everything the tests need (idempotently) and runs them all: formatting, clippy for
# native and wasm32 with every feature combination, rustdoc, the foreign types in the public
# API (against external-types.toml), the native tests (unit, integration, interop with Python
# websockets and Node ws, doc tests; scenarios, faults and interop on both native engines),
# Autobahn|Testsuite in client and server mode on both engines against autobahn/expected.json
# and autobahn/expected-tungstenite.json, the browser tests in Chromium, Firefox ESR and WebKitGTK, the npm
# package as users install it (Node.js and the three browsers), and the chat demo and the
# framework examples end to end in the three browsers.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

# Every feature set a user can pick (each feature alone, none, all).
FEATURE_SETS=("" "--no-default-features" "--no-default-features --features native-roots"
              "--no-default-features --features hyper" "--no-default-features --features json"
              "--no-default-features --features protobuf"
              "--no-default-features --features tungstenite" "--all-features")

step "clippy, native, every feature set"
for f in "${FEATURE_SETS[@]}"; do
  echo "-- features: ${f:-default}"
  # shellcheck disable=SC2086
  cargo clippy --quiet --all-targets $f -- -D warnings
done

step "clippy, wasm32-unknown-unknown, every feature set"
for f in "${FEATURE_SETS[@]}"; do
  echo "-- features: ${f:-default}"
  # shellcheck disable=SC2086
  cargo clippy --quiet --target wasm32-unknown-unknown --lib --tests $f -- -D warnings
done

step "clippy: the npm bindings and the chat clients (www/, Leptos page and its SSR server, Yew)"
cargo clippy --quiet -p isosock-js -p isosock-chat-client -p isosock-chat-protocol \
  -p isosock-yew-chat -p isosock-chat-cli \
  --target wasm32-unknown-unknown -- -D warnings
# The Leptos chat's two builds: the hydrating page (wasm) and its rendering server (native).
cargo clippy --quiet -p isosock-leptos-chat --lib --features hydrate \
  --target wasm32-unknown-unknown -- -D warnings
cargo clippy --quiet -p isosock-leptos-chat --all-targets --features ssr -- -D warnings

step "the framework hooks (crates/): clippy native and wasm32 with and without features, docs, native doc tests"
for hook in isosock-leptos isosock-yew; do
  for f in "" "--all-features"; do
    # shellcheck disable=SC2086
    cargo clippy --quiet -p "$hook" --all-targets $f -- -D warnings
    # shellcheck disable=SC2086
    cargo clippy --quiet -p "$hook" --target wasm32-unknown-unknown --lib --tests $f -- -D warnings
  done
  RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p "$hook" --all-features
  RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p "$hook" --all-features --target wasm32-unknown-unknown
  cargo test --quiet -p "$hook" --all-features
done

step "clippy, native, the chat examples' protocol crate and CLI client"
cargo clippy --quiet -p isosock-chat-protocol -p isosock-chat-cli --all-targets -- -D warnings

step "clippy, the benchmarks (bench/: native load generator; browser and footprint wasm crates)"
cargo clippy --quiet -p isosock-bench --all-targets -- -D warnings
cargo clippy --quiet -p isosock-bench-browser -p isosock-footprint \
  --target wasm32-unknown-unknown -- -D warnings

step "docs (every public item documented, no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --target wasm32-unknown-unknown --all-features

step "foreign types in the public API, native and wasm32 (against external-types.toml)"
./scripts/check-external-types.sh

step "native tests (unit, scenarios, server, TLS, hyper, interop, doc tests; both engines)"
cargo test --all-features

step "native tests without default features (no webpki roots)"
cargo test --no-default-features --lib --test native

step "Autobahn|Testsuite, client and server mode, both engines, against autobahn/expected*.json"
./scripts/autobahn.sh

step "browser tests, library and framework hooks (headless Chromium, Firefox ESR, then WebKitGTK under Xvfb)"
./scripts/test-wasm.sh

step "npm package: packed tarball in Node.js, tsc on its types, in Chromium, Firefox and WebKitGTK, bundled by Vite"
./scripts/test-js.sh

step "chat demo end to end: two pages in Chromium, Firefox and WebKitGTK, server killed and restarted"
./scripts/test-e2e.sh

step "chat examples: protocol and CLI unit tests, Leptos page + native CLI chat, Yew page (three browsers)"
cargo test --quiet -p isosock-chat-protocol -p isosock-chat-cli
./scripts/test-examples.sh

step "benchmarks: unit tests, and every server x client pair of the load generator answers correctly"
cargo test --quiet -p isosock-bench
cargo run --quiet --release -p isosock-bench -- selftest

# 30 s a target keeps the whole run under an hour on a cold 2-core machine now that Autobahn's
# compression cases take 13 minutes; scripts/fuzz.sh alone defaults to 60 s.
step "fuzzing: every target in fuzz/ for ${FUZZ_SECONDS:-20} s (FUZZ_SECONDS sets it)"
./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

echo
echo "all checks passed"
