#!/bin/bash
# test_install.sh CMAKE BUILD_DIR SOURCE_DIR CC [CFLAGS] - installs the build
# into a temporary prefix P (cmake --install --prefix) and checks what a user
# gets (docs/install.md): libringleader.so.MAJOR with that SONAME, exporting
# every RL_API function of the installed headers and nothing else (no rli_);
# examples/c/hello.c built with pkg-config and with find_package(ringleader),
# both run; the installed programs run from P with P's library.
# CFLAGS: the sanitizer flags of a sanitizer build, for the examples.
set -u
cmake=$1
build=$2
src=$3
cc=$4
cflags=${5:-}
P=$(mktemp -d /tmp/rl-install.XXXXXX)
trap 'rm -rf "$P"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
# Every command is bounded: nothing here should take more than a minute.
t() { timeout 120 "$@"; }

t "$cmake" --install "$build" --prefix "$P/prefix" >"$P/install.log" 2>&1 ||
    { cat "$P/install.log"; echo "FAIL: cmake --install"; exit 1; }
prefix=$P/prefix
version=$(t "$prefix/bin/ringleader" --version) || fail "P/bin/ringleader --version: exit $?"
[[ "$version" =~ ^ringleader\ ([0-9]+)\.[0-9]+\.[0-9]+$ ]] ||
    { echo "FAIL: ringleader --version printed '$version'"; exit 1; }
major=${BASH_REMATCH[1]}

# The library: its SONAME carries the major version.
lib=$prefix/lib/libringleader.so.$major
[ -f "$lib" ] || fail "no $lib (have: $(ls "$prefix/lib"))"
readelf -d "$lib" | grep -q "(SONAME) *Library soname: \[libringleader.so.$major\]" ||
    fail "SONAME of $lib: $(readelf -d "$lib" | grep SONAME)"
[ -L "$prefix/lib/libringleader.so" ] || fail "no libringleader.so link for -lringleader"

# Exports: the RL_API functions of the installed headers, no rli_ symbol,
# nothing else of ours (the sanitizers' and the toolchain's start with _).
nm -D --defined-only "$lib" | awk '{print $3}' | sort -u >"$P/exported"
grep -q '^rl_' "$P/exported" || fail "no rl_ symbol exported"
grep '^rli_' "$P/exported" && fail "internal rli_ symbols exported (above)"
others=$(grep -v -e '^rl_' -e '^_' "$P/exported")
[ -z "$others" ] || fail "exported symbols outside the rl_ API: $others"
grep -ho 'RL_API[^(]*(' "$prefix"/include/ringleader/*.h | grep -o 'rl_[a-z0-9_]*($' |
    tr -d '(' | sort -u >"$P/declared"
[ -s "$P/declared" ] || fail "no RL_API declarations in the installed headers"
missing=$(comm -23 "$P/declared" "$P/exported")
[ -z "$missing" ] || fail "declared RL_API but not exported: $missing"
for f in messages.def status.def err.h proto.h ring.h allreduce.h spec.h; do
    [ -f "$prefix/include/ringleader/$f" ] || fail "header ringleader/$f not installed"
done

# loads_prefix_lib EXE: EXE loads P's libringleader (by its real path).
loads_prefix_lib() {
    local got
    got=$(ldd "$1" | awk -v so="libringleader.so.$major" '$1 == so {print $3}')
    [ -n "$got" ] && [ "$(realpath "$got")" = "$(realpath "$lib")" ]
}

# run_hello NAME EXE: runs a built example; it must print the error text,
# the one-member all-reduce and the spec's four nodes.
run_hello() {
    local out
    out=$(cd "$P" && t "$2" "$src/configs/local.yaml" 2>&1)
    local rc=$?
    [ "$rc" -eq 0 ] || { fail "$1: exit $rc: $out"; return; }
    echo "$out" | grep -q '^RL_ETIMEDOUT: deadline exceeded$' || fail "$1: no error text: $out"
    echo "$out" | grep -q '^allreduce over 1 member(s), epoch 1: 1 2 3$' || fail "$1: $out"
    echo "$out" | grep -q 'local.yaml: 4 node(s)$' || fail "$1: no spec: $out"
    loads_prefix_lib "$2" ||
        fail "$1 does not load P's library: $(ldd "$2" | grep ringleader)"
}

# C with pkg-config (the rpath only so that it runs without LD_LIBRARY_PATH).
pc=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig t pkg-config --cflags --libs ringleader) ||
    fail "pkg-config --cflags --libs ringleader: exit $?"
# shellcheck disable=SC2086 # word splitting of the flags is intended
if t "$cc" $cflags -o "$P/hello-pc" "$src/examples/c/hello.c" $pc -Wl,-rpath,"$prefix/lib" \
    >"$P/cc.log" 2>&1; then
    run_hello "hello (pkg-config)" "$P/hello-pc"
else
    fail "cc hello.c \$(pkg-config ...): $(cat "$P/cc.log")"
fi

# C with CMake: find_package(ringleader) from P.
if t "$cmake" -S "$src/examples/c" -B "$P/ex" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" >"$P/ex.log" 2>&1 &&
    t "$cmake" --build "$P/ex" >>"$P/ex.log" 2>&1; then
    grep -q "^ringleader_DIR:PATH=$prefix/lib/cmake/ringleader$" "$P/ex/CMakeCache.txt" ||
        fail "find_package found another ringleader: $(grep ringleader_DIR "$P/ex/CMakeCache.txt")"
    run_hello "hello (find_package)" "$P/ex/hello"
else
    fail "examples/c with find_package: $(tail -20 "$P/ex.log")"
fi

# The version file refuses another major version.
mkdir -p "$P/v"
printf 'cmake_minimum_required(VERSION 3.18)\nproject(v LANGUAGES C)\nfind_package(ringleader %s REQUIRED)\n' \
    "$((major + 1)).0" >"$P/v/CMakeLists.txt"
t "$cmake" -S "$P/v" -B "$P/v/b" -DCMAKE_PREFIX_PATH="$prefix" >"$P/v.log" 2>&1 &&
    fail "find_package(ringleader $((major + 1)).0) accepted version $version"
grep -q "ringleaderConfig.cmake, version: ${version#ringleader }" "$P/v.log" || fail "version refusal: $(cat "$P/v.log")"

# The programs run from P, with P's library.
for prog in ringleader ringleader-node; do
    loads_prefix_lib "$prefix/bin/$prog" ||
        fail "P/bin/$prog does not load P's library: $(ldd "$prefix/bin/$prog" | grep ringleader)"
done
t "$prefix/bin/ringleader-node" --help >/dev/null 2>&1 || fail "P/bin/ringleader-node --help: exit $?"
out=$(t "$prefix/bin/ringleader" validate "$src/configs/local.yaml" 2>&1) ||
    fail "P/bin/ringleader validate local.yaml: exit $?: $out"
echo "$out" | grep -qE '^ +n4 +tcp://127.0.0.1:7704 +1$' || fail "validate summary: $out"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "ok: installed into a temporary prefix, $(wc -l <"$P/exported") symbols exported, examples built both ways"
