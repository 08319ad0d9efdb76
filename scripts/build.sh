#!/usr/bin/env bash
# Configures and builds one of the two build trees, installing what the build needs first.
#   build.sh release   optimized, for running and benchmarks   → build/release
#   build.sh test      ASan + UBSan, with the test suite       → build/asan
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-release}"
case "$kind" in
  release) scripts/install-deps.sh build
           dir=build/release
           flags=(-DCMAKE_BUILD_TYPE=Release -DCACHALOT_TESTS=OFF) ;;
  test)    scripts/install-deps.sh test
           dir=build/asan
           flags=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g -O1" -DCACHALOT_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|test]" >&2; exit 2 ;;
esac

cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
