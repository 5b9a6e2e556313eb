#!/usr/bin/env bash
# The framework examples' end-to-end test: builds the Leptos and Yew pages
# (scripts/build-examples.sh), the chat server and the native chat-cli, then runs
# tests/e2e/frameworks.test.mjs (node --test): the Leptos page in headless Chromium and chat-cli
# chat through the server; the Yew page connects.
#
# Needs node >= 20, npm, Chromium at /usr/bin/chromium (or $CHROMIUM), the wasm32 target,
# wasm-bindgen-cli and tests/e2e's npm packages (scripts/setup.sh installs them all).
# Screenshots: tests/artifacts/frameworks-leptos.png and frameworks-yew.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
e2e=$root/tests/e2e

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test-examples: $tool not found on PATH" >&2; exit 1; }
done

if [ ! -d "$e2e/node_modules/playwright-core" ]; then
  echo "test-examples: tests/e2e/node_modules is missing; run scripts/setup.sh" >&2
  exit 1
fi

"$root/scripts/build-examples.sh"
cargo build --quiet --manifest-path "$root/Cargo.toml" --example chat_server --features hyper
cargo build --quiet --manifest-path "$root/Cargo.toml" -p isosock-chat-cli

cd "$root"
exec node --test tests/e2e/frameworks.test.mjs
