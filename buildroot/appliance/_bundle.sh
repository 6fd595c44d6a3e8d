# Bundling helpers of the appliance build (sourced: buildroot/appliance/build and
# bundle-front-ends). Each needs $deno (the pinned deno) and $root (the repository).

# ASCII only (issue 13: memory): V8 keeps a script's source in its heap, as a two-byte string if a
# single character needs it; the bundles' few non-ASCII characters (in comments: deno bundle
# escapes those of strings) doubled that, about 2.3 MiB in kattach and 1.7 MiB in the sshd
# (bench/kattach_idle.ts). Each becomes a \uXXXX escape (UTF-16 units), which means the same in
# strings, templates and regular expressions.
ascii_js() {
  perl -CSD -pe 's/([^\x00-\x7F])/my $c = ord($1); $c > 0xFFFF
    ? sprintf("\\u%04x\\u%04x", 0xD800 + (($c - 0x10000) >> 10), 0xDC00 + (($c - 0x10000) & 0x3FF))
    : sprintf("\\u%04x", $c)/ge'
}

# npm:ssh2 (CommonJS) reads __dirname, which ESM lacks: each bundled file starts with this line.
DIRNAME_LINE='var __dirname = import.meta.dirname, __filename = import.meta.filename;'
# CommonJS code in a bundle calls require() through esbuild's shim, which uses a `require` in scope
# and otherwise throws "Dynamic require of "node:stream" is not supported". deno bundle swaps in
# createRequire() by matching the shim's text, which a minified (or --keep-names) output no longer
# matches in every chunk: this gives each file a `require` of its own.
REQUIRE_LINE='import { createRequire as __kaosCreateRequire } from "node:module"; var require = __kaosCreateRequire(import.meta.url);'

# bundle ENTRY.ts OUT.js: one JS file, ASCII only.
bundle() {
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/kaos-bundle.XXXXXX")
  (cd "$root" && "$deno" bundle -q --external '*.node' -o "$tmp/bundle.js" "$1") ||
    { rm -rf "$tmp"; echo "deno bundle $1 failed" >&2; return 1; }
  mkdir -p "$(dirname "$2")"
  { echo "$DIRNAME_LINE"; ascii_js <"$tmp/bundle.js"; } >"$2"
  rm -rf "$tmp"
}

# bundle_split OUT_DIR ENTRY.ts…: the entries with code splitting (deno bundle --code-splitting),
# minified: OUT_DIR/ENTRY.js each, and chunk-*.js files they share or import dynamically (a dynamic
# import loads its chunk only when it runs), ASCII only. V8 holds a module's source for its life
# (and Deno a copy): minified, the sshd's SSH server chunk is 0.3 MB instead of 0.6.
bundle_split() {
  local out=$1 tmp f
  shift
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/kaos-bundle.XXXXXX")
  (cd "$root" && "$deno" bundle -q --external '*.node' --code-splitting --minify --outdir "$tmp" "$@") ||
    { rm -rf "$tmp"; echo "deno bundle --code-splitting $* failed" >&2; return 1; }
  mkdir -p "$out"
  for f in "$tmp"/*.js; do
    { echo "$DIRNAME_LINE $REQUIRE_LINE"; ascii_js <"$f"; } >"$out/${f##*/}"
  done
  rm -rf "$tmp"
}
