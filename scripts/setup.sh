#!/usr/bin/env bash
# Installs everything isosock's tests need, idempotently: each step checks first, so a second
# run takes seconds. Needs a Debian machine with Rust (rustup) and root (or sudo) for apt.
#
# `setup.sh --demo` installs only what the demo needs (the wasm32 target and wasm-bindgen-cli).
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

say "wasm-bindgen-cli $WB_VERSION"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ] \
   || ! command -v wasm-bindgen-test-runner >/dev/null; then
  # Not --locked: the registry here can lag the newest release of a dependency.
  cargo install wasm-bindgen-cli --version "=$WB_VERSION" --no-default-features --force
else echo "present"; fi

if [ "${1:-}" = "--demo" ]; then
  echo
  echo "demo set-up complete"
  exit 0
fi

say "Chromium and ChromeDriver (Debian packages)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
else echo "present: $(chromium --version 2>/dev/null | tail -1)"; fi

GD_VERSION=0.37.1
say "Firefox ESR (Debian package) and geckodriver $GD_VERSION (the browser tests in Firefox too)"
if ! command -v firefox-esr >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends firefox-esr
else echo "present: $(firefox-esr --version 2>/dev/null | tail -1)"; fi
if [ "$(geckodriver --version 2>/dev/null | head -1 | awk '{print $2}')" != "$GD_VERSION" ]; then
  # Built from crates.io (no download of a prebuilt driver); not --locked, as for wasm-bindgen-cli.
  cargo install geckodriver --version "=$GD_VERSION" --force
else echo "present: geckodriver $GD_VERSION"; fi

say "WebKitGTK's WebDriver and MiniBrowser, and Xvfb (the browser tests in WebKit too)"
if ! command -v WebKitWebDriver >/dev/null || ! command -v xvfb-run >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends webkit2gtk-driver xvfb xauth
else echo "present: $(dpkg-query -W -f '${Version}' webkit2gtk-driver 2>/dev/null)"; fi

say "tinyproxy and microsocks (real HTTP CONNECT and SOCKS5 proxies for the proxy tests)"
if ! command -v tinyproxy >/dev/null || ! command -v microsocks >/dev/null; then
  $SUDO apt-get update -qq
  # tinyproxy-bin: the binary without the system service the `tinyproxy` package starts.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends tinyproxy-bin microsocks
else echo "present: $(tinyproxy -v 2>/dev/null | head -1), microsocks $(dpkg-query -W -f '${Version}' microsocks 2>/dev/null)"; fi

say "Node.js and npm"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
else echo "present: node $(node --version)"; fi

WP_VERSION=0.15.1
say "wasm-pack $WP_VERSION (browser tests through wasm-pack, npm package builds)"
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WP_VERSION" ]; then
  cargo install wasm-pack --version "=$WP_VERSION" --locked --force
else echo "present"; fi

CF_VERSION=0.13.2
say "cargo-fuzz $CF_VERSION (the fuzz targets in fuzz/)"
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CF_VERSION" ]; then
  cargo install cargo-fuzz --version "=$CF_VERSION" --locked --force
else echo "present"; fi

say "Python websockets (interop peer) in .deps/venv"
PY="$DEPS/venv/bin/python"
if ! "$PY" -c 'import websockets, sys; sys.exit(websockets.__version__ != "'"$(sed -n 's/^websockets==//p' tests/interop/requirements.txt)"'")' 2>/dev/null; then
  python3 -m venv "$DEPS/venv"
  "$PY" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
else echo "present: websockets $("$PY" -c 'import websockets; print(websockets.__version__)')"; fi

# Installs DIR's npm packages exactly as its package-lock.json pins them, unless node_modules
# was installed from this very lock file (its hash is kept in node_modules).
npm_deps() {
  local dir=$1 want stamp="$1/node_modules/.isosock-lock.sha256"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then echo "present"; return; fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

say "Node ws (interop peer) in tests/interop"
npm_deps tests/interop

say "npm packages of the JS package tests in tests/js, which tests/e2e and bench/browser use too (binaryen's wasm-opt, typescript, playwright-core, selenium-webdriver 4.46.0, vite)"
npm_deps tests/js

# The suite's own script installs it (Python >= 3.12 venv from ../shared/autobahn).
./scripts/autobahn.sh --install-only

echo
echo "setup complete"
