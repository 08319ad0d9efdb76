#!/usr/bin/env bash
# Pass-through baseline: Cachalot and nginx as plain reverse proxies (no cache, keep-alive to
# the origin, 1 worker each) in front of the same demo origin, driven by wrk in the same run.
# Rounds alternate between the two so that drift on a noisy machine hits both alike.
# Prints medians of requests/s and p99 latency per proxy and Cachalot's ratio to nginx.
#   ROUNDS=5 DURATION=10s CONNECTIONS=50 loadtest/passthrough.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port
# The origin and wrk share CPU 0, each proxy gets CPU 1 to itself.
start_origin
CACHALOT_ROUTE="cache: {enabled: false}" start_cachalot   # pass-through: no cache
start_nginx plain
READY_PATH=/ await_ready $origin_port $cachalot_port $nginx_port

measure() { measure_url "http://127.0.0.1:$1/"; }

measure $cachalot_port >/dev/null; measure $nginx_port >/dev/null  # warm-up
: > "$work/cachalot.txt"; : > "$work/nginx.txt"
for r in $(seq "$ROUNDS"); do
  measure $cachalot_port >> "$work/cachalot.txt"
  measure $nginx_port >> "$work/nginx.txt"
  echo "round $r: cachalot $(tail -1 "$work/cachalot.txt")  nginx $(tail -1 "$work/nginx.txt")" >&2
done

c_rps=$(cut -d' ' -f1 "$work/cachalot.txt" | median); n_rps=$(cut -d' ' -f1 "$work/nginx.txt" | median)
c_p99=$(cut -d' ' -f2 "$work/cachalot.txt" | median); n_p99=$(cut -d' ' -f2 "$work/nginx.txt" | median)
echo
echo "pass-through, $ROUNDS rounds of $DURATION, $CONNECTIONS connections, medians"
printf '| proxy | requests/s | p99 ms |\n|---|---|---|\n'
printf '| cachalot | %.0f | %.2f |\n| nginx %s | %.0f | %.2f |\n' "$c_rps" "$c_p99" "$(nginx -v 2>&1 | sed 's/.*\///')" "$n_rps" "$n_p99"
awk -v a="$c_rps" -v b="$n_rps" -v c="$c_p99" -v d="$n_p99" -v r="$(paired_ratio "$work/cachalot.txt" "$work/nginx.txt")" \
  'BEGIN {printf "cachalot/nginx: throughput %.2fx (median of round ratios %.2fx), p99 %.2fx\n", a/b, r, c/d}'
