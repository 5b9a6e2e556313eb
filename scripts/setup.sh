#!/usr/bin/env bash
# Installs everything isosock's tests need, idempotently: each step checks first, so a second
# run takes seconds. Needs a Debian machine with Rust (rustup) and root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS="$ROOT/.deps"
mkdir -p "$DEPS"

say() { printf '\n== %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# The wasm-bindgen version the crate pins; the CLI must match it exactly.
WB_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml | head -1)
if [ -z "$WB_VERSION" ]; then echo "cannot find the pinned wasm-bindgen version in Cargo.toml" >&2; exit 1; fi

say "Rust wasm32 target"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
else echo "present"; fi

say "Chromium and ChromeDriver (Debian packages)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
else echo "present: $(chromium --version 2>/dev/null | tail -1)"; fi

say "Node.js and npm"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
else echo "present: node $(node --version)"; fi

say "wasm-bindgen-cli $WB_VERSION"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ] \
   || ! command -v wasm-bindgen-test-runner >/dev/null; then
  # Not --locked: the registry here can lag the newest release of a dependency.
  cargo install wasm-bindgen-cli --version "=$WB_VERSION" --no-default-features --force
else echo "present"; fi

WP_VERSION=0.15.1
say "wasm-pack $WP_VERSION (browser tests through wasm-pack, npm package builds)"
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WP_VERSION" ]; then
  cargo install wasm-pack --version "=$WP_VERSION" --locked --force
else echo "present"; fi

say "Python websockets (interop peer) in .deps/venv"
PY="$DEPS/venv/bin/python"
if ! "$PY" -c 'import websockets, sys; sys.exit(websockets.__version__ != "'"$(sed -n 's/^websockets==//p' tests/interop/requirements.txt)"'")' 2>/dev/null; then
  python3 -m venv "$DEPS/venv"
  "$PY" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
else echo "present: websockets $("$PY" -c 'import websockets; print(websockets.__version__)')"; fi

say "Node ws (interop peer) in tests/interop/node_modules"
WS_WANT=$(sed -n 's/.*"ws": "\([0-9.]*\)".*/\1/p' tests/interop/package.json)
WS_HAVE=$(node -p 'require("./tests/interop/node_modules/ws/package.json").version' 2>/dev/null || true)
if [ "$WS_HAVE" != "$WS_WANT" ]; then
  (cd tests/interop && npm install --no-audit --no-fund --loglevel=error)
else echo "present: ws $WS_HAVE"; fi

echo
echo "setup complete"
