#!/usr/bin/env bash
# L2-hit benchmark: Cachalot with no L1 (cache.l1.size: 0), so every request is a Redis GET,
# serving the demo origin's 1 KiB /1k; next to redis-benchmark GET of values the size of that
# stored entry (10 000 keys, written first), the ceiling for any L2 hit. The same again against
# a 3-primary Redis Cluster (a second Cachalot with cache.l2.cluster; redis-benchmark --cluster).
# Every redis-server on CPU 1; wrk and redis-benchmark on CPU 0 with the same concurrency and no
# pipelining; the Cachalots (one worker each) unpinned, measured one after the other.
#   ROUNDS=5 DURATION=8s CONNECTIONS=50 loadtest/l2-hit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-50}"
redis_port=18084
cluster_ports=(18091 18092 18093)
cluster_cachalot_port=18085; cluster_admin=19091

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $redis_port "${cluster_ports[@]}" $origin_port $cachalot_port $cachalot_admin \
  $cluster_cachalot_port $cluster_admin
taskset -c 1 redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  >/dev/null & pids+=($!)
seeds=""
for p in "${cluster_ports[@]}"; do
  mkdir -p "$work/cluster-$p"
  taskset -c 1 redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/cluster-$p" \
    --cluster-enabled yes --cluster-config-file nodes.conf >/dev/null & pids+=($!)
  seeds="$seeds${seeds:+, }\"127.0.0.1:$p\""
done
for p in $redis_port "${cluster_ports[@]}"; do
  until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-yes >/dev/null
for p in "${cluster_ports[@]}"; do
  until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
done
start_origin
CACHALOT_CACHE="  l1: {size: 0}
  l2: {address: \"127.0.0.1:$redis_port\", pool_size: 2}" start_cachalot ""
# The second Cachalot: the same configuration on other ports, on the cluster.
sed -e "s/port: $cachalot_port}/port: $cluster_cachalot_port}/" -e "s/port: $cachalot_admin}/port: $cluster_admin}/" \
  -e "s|l2: {address: .*}|l2: {cluster: [$seeds], pool_size: 2}|" "$work/cachalot.yaml" > "$work/cluster.yaml"
build/release/cachalot --config "$work/cluster.yaml" & pids+=($!)
await_ready $origin_port $cachalot_port
await_ready $origin_port $cluster_cachalot_port

curl -sf -o /dev/null "http://127.0.0.1:$cachalot_port/1k"
curl -sf -o /dev/null "http://127.0.0.1:$cluster_cachalot_port/1k"
sleep 0.5  # the L2 write is asynchronous
key=$(redis-cli -p $redis_port --raw keys 'cachalot:*' | head -1)
size=$(redis-cli -p $redis_port strlen "$key")
[ "$size" -gt 0 ] || { echo "nothing stored in Redis" >&2; exit 1; }
# The keys redis-benchmark GETs, written first so that every GET finds its value.
redis-benchmark -p $redis_port -n 20000 -r 10000 -d "$size" -t set -q >/dev/null 2>&1
redis-benchmark --cluster -p "${cluster_ports[0]}" -n 20000 -r 10000 -d "$size" -t set -q >/dev/null 2>&1

# redis-benchmark's GET: requests/s and p99 ms. $@: where.
bench_get() {
  local secs=${DURATION%s}
  taskset -c 0 redis-benchmark "$@" -c "$CONNECTIONS" -n $((secs * 60000)) -r 10000 -d "$size" -t get -P 1 --csv \
    2>/dev/null | awk -F'"' '/"GET"/ {print $4, $14}'
}

: > "$work/cachalot.txt"; : > "$work/redis.txt"; : > "$work/cachalot-cluster.txt"; : > "$work/redis-cluster.txt"
for r in $(seq "$ROUNDS"); do
  measure_url "http://127.0.0.1:$cachalot_port/1k" >> "$work/cachalot.txt"
  measure_url "http://127.0.0.1:$cluster_cachalot_port/1k" >> "$work/cachalot-cluster.txt"
  bench_get -p $redis_port >> "$work/redis.txt"
  bench_get --cluster -p "${cluster_ports[0]}" >> "$work/redis-cluster.txt"
  echo "round $r: cachalot $(tail -1 "$work/cachalot.txt") on cluster $(tail -1 "$work/cachalot-cluster.txt")" \
    "redis-benchmark $(tail -1 "$work/redis.txt") --cluster $(tail -1 "$work/redis-cluster.txt")" >&2
done
l2_hits=$(curl -s "http://127.0.0.1:$cachalot_admin/metrics" | awk '$1=="cachalot_l2_hits_total" {print $2}')
cluster_hits=$(curl -s "http://127.0.0.1:$cluster_admin/metrics" | awk '$1=="cachalot_l2_hits_total" {print $2}')

echo
echo "L2 hits (no L1) vs redis-benchmark GET of the stored entry ($size bytes), $ROUNDS rounds, $CONNECTIONS connections, medians"
echo "(cachalot_l2_hits_total after the runs: single $l2_hits, cluster $cluster_hits)"
row() { printf '| %s | %.0f | %.2f |\n' "$1" "$(cut -d' ' -f1 "$2" | median)" "$(cut -d' ' -f2 "$2" | median)"; }
printf '| | requests/s | p99 ms |\n|---|---|---|\n'
row "cachalot, L2 hit over HTTP, one Redis" "$work/cachalot.txt"
row "cachalot, L2 hit over HTTP, 3-primary cluster" "$work/cachalot-cluster.txt"
row "redis-benchmark GET, one Redis" "$work/redis.txt"
row "redis-benchmark --cluster GET, 3 primaries" "$work/redis-cluster.txt"
echo "cachalot on the cluster / on one Redis, median of round ratios: $(paired_ratio "$work/cachalot-cluster.txt" "$work/cachalot.txt")x"
echo "cachalot L2 hit / redis GET (one Redis), median of round ratios: $(paired_ratio "$work/cachalot.txt" "$work/redis.txt")x"
