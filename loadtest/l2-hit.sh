#!/usr/bin/env bash
# L2-hit benchmark: Cachalot with no L1 (cache.l1.size: 0), so every request is a Redis GET,
# serving the demo origin's 1 KiB /1k; next to redis-benchmark GET of a value the size of that
# stored entry, the ceiling for any L2 hit. redis-server on CPU 1; wrk and redis-benchmark on
# CPU 0 with the same concurrency and no pipelining; Cachalot (one worker) unpinned.
#   ROUNDS=5 DURATION=8s CONNECTIONS=50 loadtest/l2-hit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-50}"
redis_port=18084

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $redis_port $origin_port $cachalot_port $cachalot_admin
taskset -c 1 redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  >/dev/null & pids+=($!)
start_origin
CACHALOT_CACHE="  l1: {size: 0}
  l2: {address: \"127.0.0.1:$redis_port\", pool_size: 2}" start_cachalot ""
await_ready $origin_port $cachalot_port

curl -sf -o /dev/null "http://127.0.0.1:$cachalot_port/1k"
sleep 0.5  # the L2 write is asynchronous
key=$(redis-cli -p $redis_port --raw keys 'cachalot:*' | head -1)
size=$(redis-cli -p $redis_port strlen "$key")
[ "$size" -gt 0 ] || { echo "nothing stored in Redis" >&2; exit 1; }

: > "$work/cachalot.txt"; : > "$work/redis.txt"
for r in $(seq "$ROUNDS"); do
  measure_url "http://127.0.0.1:$cachalot_port/1k" >> "$work/cachalot.txt"
  secs=${DURATION%s}
  taskset -c 0 redis-benchmark -p $redis_port -c "$CONNECTIONS" -n $((secs * 60000)) -d "$size" -t get -P 1 --csv \
    2>/dev/null | awk -F'"' '/"GET"/ {print $4, $14}' >> "$work/redis.txt"
  echo "round $r: cachalot $(tail -1 "$work/cachalot.txt") redis-benchmark $(tail -1 "$work/redis.txt")" >&2
done
l2_hits=$(curl -s "http://127.0.0.1:$cachalot_admin/metrics" | awk '$1=="cachalot_l2_hits_total" {print $2}')

echo
echo "L2 hits (no L1) vs redis-benchmark GET of the stored entry ($size bytes), $ROUNDS rounds, $CONNECTIONS connections, medians"
echo "(cachalot_l2_hits_total after the runs: $l2_hits)"
cr=$(cut -d' ' -f1 "$work/cachalot.txt" | median); cp=$(cut -d' ' -f2 "$work/cachalot.txt" | median)
rr=$(cut -d' ' -f1 "$work/redis.txt" | median); rp=$(cut -d' ' -f2 "$work/redis.txt" | median)
printf '| | requests/s | p99 ms |\n|---|---|---|\n'
printf '| cachalot, L2 hit over HTTP | %.0f | %.2f |\n| redis-benchmark GET | %.0f | %.2f |\n' "$cr" "$cp" "$rr" "$rp"
awk -v a="$cr" -v b="$rr" 'BEGIN {printf "cachalot L2 hit / redis GET: %.2fx\n", a/b}'
