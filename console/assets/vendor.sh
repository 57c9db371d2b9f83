#!/bin/sh
# Re-vendors the chart library the console embeds. uPlot (MIT) is copied
# as published on npm: no build step, so `go build` stays plain.
#   sh console/assets/vendor.sh        (from the repository root)
set -eu
VERSION=1.6.32
dir=$(cd "$(dirname "$0")" && pwd)/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "uplot@$VERSION" >/dev/null && tar xzf "uplot-$VERSION.tgz")
mkdir -p "$dir"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dir/"
echo "uplot@$VERSION" > "$dir/VERSION"
echo "vendored uplot@$VERSION into $dir"
