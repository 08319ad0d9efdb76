#!/usr/bin/env bash
# Builds the test configuration (ASan + UBSan) and runs the whole suite: unit and integration
# tests, the latter against the real cachalot binary on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh test
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Every fuzz target for a short while on its corpus: a parser regression shows up here.
scripts/fuzz.sh all "${FUZZ_SECONDS:-20}"
cd build/asan
ctest -j "$(nproc)" --output-on-failure --timeout 300
