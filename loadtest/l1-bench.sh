#!/usr/bin/env bash
# The L1 (shared-memory store) benchmarks: throughput, hit ratio against an exact LRU, cold start.
# Needs about 2.5 GiB free in /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release >/dev/null
for what in throughput hit-ratio cold-start; do
  echo "## $what"
  build/release/l1_bench "$what"
  echo
done
