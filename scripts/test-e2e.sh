#!/usr/bin/env bash
# The chat demo's end-to-end test: builds the wasm client (www/pkg) and the chat server, then
# drives two headless Chromium pages through tests/e2e/chat.test.mjs (node --test).
#
# Needs node >= 20, npm, Chromium at /usr/bin/chromium (or $CHROMIUM), the wasm32 target and
# wasm-bindgen-cli and tests/e2e's npm packages (scripts/setup.sh installs them all).
# Screenshots: tests/artifacts/chat-a.png and chat-b.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
e2e=$root/tests/e2e

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test-e2e: $tool not found on PATH" >&2; exit 1; }
done

if [ ! -d "$e2e/node_modules/playwright-core" ]; then
  echo "test-e2e: tests/e2e/node_modules is missing; run scripts/setup.sh" >&2
  exit 1
fi

"$root/scripts/build-www.sh"
cargo build --quiet --manifest-path "$root/Cargo.toml" --example chat_server --features hyper

cd "$root"
exec node --test tests/e2e/chat.test.mjs
