#!/usr/bin/env bash
# Twin of loadtest/redis-restart.k6.js that runs here: Cachalot (L1 of 4 MiB, so most requests go
# on to the L2; Redis L2) in front of the demo origin's /w/ objects, wrk for DURATION, and Redis
# killed at a third of the run and started again (empty) at two thirds. Prints wrk's counts,
# non-2xx responses and socket errors (all must be 0: exit 1 otherwise), and the L2 counters.
#   DURATION=30s CONNECTIONS=20 loadtest/redis-restart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
DURATION="${DURATION:-30s}"
CONNECTIONS="${CONNECTIONS:-20}"
redis_port=18084

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $redis_port $origin_port $cachalot_port $cachalot_admin
start_redis() {
  redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & redis_pid=$!
  pids+=($redis_pid)
}
start_redis
start_origin
CACHALOT_CACHE="  l1: {path: $work/l1, size: 4MiB, max_object_size: 64KiB}
  l2: {address: \"127.0.0.1:$redis_port\", breaker_backoff: 1s}" start_cachalot ""
READY_PATH=/w/ready await_ready $origin_port $cachalot_port

cat > "$work/keys.lua" <<'LUA'
request = function()
  return wrk.format("GET", "/w/item-" .. math.random(5000) .. "?ttl=120&size=2048")
end
LUA
secs=${DURATION%s}
( sleep $((secs / 3)); kill -9 $redis_pid; echo "redis killed at $((secs / 3)) s" >&2
  sleep $((secs / 3)); start_redis; echo $redis_pid > "$work/redis.pid"
  echo "redis started again at $((2 * secs / 3)) s" >&2 ) & chaos=$!
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$work/keys.lua" "http://127.0.0.1:$cachalot_port" | tee "$work/wrk.txt"
wait $chaos
pids+=($(cat "$work/redis.pid"))
curl -s "http://127.0.0.1:$cachalot_admin/metrics" | grep -E '^cachalot_l2_(hits|misses|errors|breaker_opened)_total '
if grep -qE 'Non-2xx|Socket errors' "$work/wrk.txt"; then echo "FAIL: requests failed while Redis restarted"; exit 1; fi
echo "PASS: no request failed while Redis restarted"
