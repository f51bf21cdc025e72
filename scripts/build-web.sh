#!/usr/bin/env bash
# Builds the browser demo into dist/ (or the folder given): index.html, srgpt.js and
# srgpt_bg.wasm, a static folder any web server can serve. Installs the wasm32 target and the
# wasm-bindgen CLI matching Cargo.lock when they are missing.
#
#   scripts/build-web.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

# the CLI must be the exact version of the wasm-bindgen crate the build links
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none}); this takes a few minutes" >&2
  cargo install wasm-bindgen-cli --version "$want"
fi

cargo rustc --lib --release --target wasm32-unknown-unknown --crate-type cdylib
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name srgpt "$target_dir/wasm32-unknown-unknown/release/srgpt.wasm"
cp web/index.html "$out/"
echo "built $out/ ($(du -sh "$out" | cut -f1)); serve it, e.g.: python3 -m http.server -d $out 8080, then open http://127.0.0.1:8080" >&2
