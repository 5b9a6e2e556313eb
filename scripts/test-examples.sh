#!/usr/bin/env bash
# The framework examples' end-to-end test: builds the Leptos page and its rendering server and
# the Yew page (scripts/build-examples.sh), the chat server and the native chat-cli once, then
# runs tests/e2e/frameworks.test.mjs (node --test): the Leptos server renders the page, the
# browser hydrates it, and it chats with chat-cli through that server; the Yew page connects;
# both reconnect after a server restart. Each test runs in three
# browser engines (tests/js/browsers.mjs): headless Chromium (Debian's, through
# playwright-core), headless Firefox ESR (geckodriver) and WebKitGTK's MiniBrowser
# (WebKitWebDriver, on an Xvfb display the test starts), the last two through
# selenium-webdriver. ISOSOCK_BROWSERS=chromium,firefox,webkit (the default) picks fewer.
#
# Needs node >= 20, npm, the browsers and drivers, the wasm32 target, wasm-bindgen-cli and
# tests/js's npm packages, which tests/e2e uses too (scripts/setup.sh installs them all; nothing
# here downloads a browser or a driver).
# Screenshots: tests/artifacts/frameworks-leptos-<engine>.png and frameworks-yew-<engine>.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
modules=$root/tests/js/node_modules

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "test-examples: $tool not found on PATH" >&2; exit 1; }
done

for pkg in playwright-core selenium-webdriver; do
  if [ ! -d "$modules/$pkg" ]; then
    echo "test-examples: tests/js/node_modules/$pkg is missing; run scripts/setup.sh" >&2
    exit 1
  fi
done

"$root/scripts/build-examples.sh"
cargo build --quiet --manifest-path "$root/Cargo.toml" --example chat_server --features hyper
cargo build --quiet --manifest-path "$root/Cargo.toml" -p isosock-chat-cli

cd "$root"
exec node --test tests/e2e/frameworks.test.mjs
