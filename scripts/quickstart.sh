#!/usr/bin/env bash
# quickstart.sh - the README's first command: installs what is missing, builds,
# and runs the default job (configs/local.yaml: 4 nodes on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/coordinator/ringleader validate configs/local.yaml
exec ./build/coordinator/ringleader run configs/local.yaml "$@"
