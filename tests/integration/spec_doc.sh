#!/bin/bash
# spec_doc.sh RINGLEADER SOURCE_DIR - docs/spec.md is generated from
# lib/spec_keys.def by `ringleader validate --keys --markdown`; fails, saying
# how to regenerate it, when the committed file differs from what the
# generator prints now.
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$bin" validate --keys --markdown >"$tmp/spec.md" 2>"$tmp/err"; then
    echo "FAIL: ringleader validate --keys --markdown: $(cat "$tmp/err")"
    exit 1
fi
if ! diff -u "$src/docs/spec.md" "$tmp/spec.md" >"$tmp/diff"; then
    head -40 "$tmp/diff"
    echo "FAIL: docs/spec.md is stale (lib/spec_keys.def or its printer changed)."
    echo "Regenerate it with: cmake --build build --target spec_doc"
    echo "  (or: build/coordinator/ringleader validate --keys --markdown > docs/spec.md)"
    exit 1
fi
echo "spec_doc: docs/spec.md is up to date"
