#!/usr/bin/env bash
# The API-cache workload of loadtest/traffic.k6.js, run with wrk (loadtest/traffic.lua): Cachalot
# (L1, 1 worker, CPU 1) in front of the demo origin's /w/ objects, Zipf-distributed keys over
# three routes, a share of authenticated requests and of updates. Prints the hit ratio read from
# Cache-Status, stale and collapsed responses, p50/p95/p99, failures, the origin's request count,
# and whether the k6 script's thresholds hold (exit 1 when they do not).
#   DURATION=30s CONNECTIONS=20 ALPHA=1.1 KEYS=1000 AUTH_SHARE=0.05 UNSAFE_SHARE=0.01 loadtest/traffic.sh
# wrk is closed-loop (each connection sends its next request when the last is answered); k6's
# script holds a constant arrival rate instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
DURATION="${DURATION:-30s}"
CONNECTIONS="${CONNECTIONS:-20}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $origin_port $cachalot_port $cachalot_admin
start_origin
start_cachalot
READY_PATH=/w/ready await_ready $origin_port $cachalot_port

before=$(curl -s "http://127.0.0.1:$origin_port/stats" | sed 's/.*"workload":\([0-9]*\).*/\1/')
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s loadtest/traffic.lua "http://127.0.0.1:$cachalot_port" |
  tee "$work/wrk.txt" | sed -n '/^requests /,$p'
after=$(curl -s "http://127.0.0.1:$origin_port/stats" | sed 's/.*"workload":\([0-9]*\).*/\1/')
echo "origin requests during the run: $((after - before))"
grep -q "thresholds.*PASS" "$work/wrk.txt"
