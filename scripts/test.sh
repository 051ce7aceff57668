#!/usr/bin/env bash
# test.sh - the README's second command: installs what is missing, then runs
# the whole suite three ways: the normal build, the AddressSanitizer +
# UndefinedBehaviorSanitizer build, and bounded libFuzzer runs (clang).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== build and test (gcc, -Wall -Wextra -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure -E '^fuzz_')

echo "== sanitizers (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -E '^fuzz_')

echo "== fuzzing (libFuzzer, bounded); the whole tree built with clang -Werror too"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" >/dev/null
(cd build-fuzz && ctest --output-on-failure -R '^fuzz_')
