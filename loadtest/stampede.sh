#!/usr/bin/env bash
# Stampede benchmark: CLIENTS concurrent clients ask for one cold key at once, behind an origin
# that takes 300 ms (the demo origin's /slow). For Cachalot, nginx (proxy_cache_lock on) and
# Varnish, each round: how many requests reached the origin, and the clients' p99 latency.
# A new key each round and server (?k=…), so every round starts cold. curl opens one
# connection per client; rounds alternate between the servers.
#   ROUNDS=5 CLIENTS=500 loadtest/stampede.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
CLIENTS="${CLIENTS:-500}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null
ulimit -n 65536 2>/dev/null || true

setup_work
start_servers

# One round against one server → "origin_requests p99_ms failed p50_ms" (failed: clients without a 200)
stampede() {
  local url="http://127.0.0.1:$1/slow?k=$2" before after
  before=$(origin_slow_count)
  # curl runs at most 300 transfers at once: two processes share the clients.
  local half=$((CLIENTS / 2))
  for part in 1 2; do
    local n=$half; [ "$part" = 2 ] && n=$((CLIENTS - half))
    for _ in $(seq "$n"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$work/urls$part"
  done
  for part in 1 2; do
    taskset -c 0 curl --parallel --parallel-immediate --parallel-max 300 -s -K "$work/urls$part" \
      -w '%{http_code} %{time_total}\n' > "$work/times$part" 2>/dev/null &
  done
  wait %- %+ 2>/dev/null || true
  cat "$work/times1" "$work/times2" > "$work/times"
  after=$(origin_slow_count)
  local p99 p50 ok
  p99=$(awk '{print $2 * 1000}' "$work/times" | sort -g | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print a[i]}')
  p50=$(awk '{print $2 * 1000}' "$work/times" | median)
  ok=$(awk '$1 == 200' "$work/times" | wc -l)
  echo "$((after - before)) $p99 $((CLIENTS - ok)) $p50"
}

# The origin itself, 500 clients straight to it: what this client setup adds to 300 ms.
names+=(origin-direct); ports+=($origin_port)
for n in "${names[@]}"; do : > "$work/$n.txt"; done
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in 0 1 2 3; do
    stampede "${ports[$i]}" "${names[$i]}-$r-$RANDOM" >> "$work/${names[$i]}.txt"
    line="$line ${names[$i]} $(tail -1 "$work/${names[$i]}.txt")"
    sleep 0.5
  done
  echo "$line" >&2
done

echo
echo "stampede: $CLIENTS concurrent clients on one cold key, origin 300 ms, $ROUNDS rounds, medians"
printf '| server | origin requests | client p50 ms | client p99 ms | clients without a 200 (all rounds) |\n'
printf '|---|---|---|---|---|\n'
for n in "${names[@]}"; do
  printf '| %s | %s | %.1f | %.1f | %s |\n' "$n" "$(cut -d' ' -f1 "$work/$n.txt" | median)" \
    "$(cut -d' ' -f4 "$work/$n.txt" | median)" "$(cut -d' ' -f2 "$work/$n.txt" | median)" \
    "$(cut -d' ' -f3 "$work/$n.txt" | awk '{s+=$1} END {print s}')"
done
