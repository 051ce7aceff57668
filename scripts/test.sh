#!/usr/bin/env bash
# test.sh - the README's second command: installs what is missing, then
#   1. builds every configuration: gcc RelWithDebInfo (tested), gcc Debug and
#      Release and clang Release (built only, so every configuration a user
#      may pick compiles clean), ASan+UBSan, libFuzzer,
#   2. runs the suite on the gcc RelWithDebInfo build,
#   3. runs the suite under AddressSanitizer + UndefinedBehaviorSanitizer,
#   4. runs the bounded libFuzzer harnesses (clang).
# Every build here has -DRL_WERROR=ON: warnings are errors in CI, not for users.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

# configure_build DIR [cmake args...]: configures and builds quietly, showing
# the compiler's output only when the build fails.
configure_build() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DRL_WERROR=ON "$@" >/dev/null
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    grep -E 'error|warning' "$dir/build.log" | head -40 >&2 || true
    echo "test.sh: the build in $dir failed (full log: $dir/build.log)" >&2
    return 1
  fi
}

# Every configuration is built before any test runs, so a warning that only
# one compiler or optimisation level raises fails the run in minutes.
echo "== build every configuration (-Werror): gcc RelWithDebInfo, Debug, Release; clang Release; ASan+UBSan; libFuzzer"
configure_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
configure_build build-debug -DCMAKE_BUILD_TYPE=Debug
configure_build build-release -DCMAKE_BUILD_TYPE=Release
CC=clang configure_build build-clang -DCMAKE_BUILD_TYPE=Release
configure_build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_SANITIZE=ON
CC=clang configure_build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_FUZZ=ON

echo "== test (gcc RelWithDebInfo)"
(cd build && ctest --output-on-failure -E '^fuzz_')

echo "== sanitizers (ASan + UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -E '^fuzz_')

echo "== fuzzing (libFuzzer, bounded; clang)"
(cd build-fuzz && ctest --output-on-failure -R '^fuzz_')
