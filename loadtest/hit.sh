#!/usr/bin/env bash
# Cache-hit benchmark: Cachalot, nginx (proxy_cache) and Varnish in front of the same demo origin,
# each with one worker pinned to CPU 1, all serving the demo origin's 1 KiB cacheable JSON
# (/1k) from cache; wrk (1 thread) on CPU 0. Rounds alternate between the three so drift hits
# all alike. Prints medians of requests/s and p99, and Cachalot's ratios to each peer.
#   ROUNDS=5 DURATION=8s CONNECTIONS=50 loadtest/hit.sh
# TARGET=/1k-tagged serves an object with five purge tags; PURGE_UNRELATED=1 purges an unrelated
# tag on Cachalot after warming, so that every hit checks its scopes' purge times (the slow path).
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-50}"
TARGET="${TARGET:-/1k}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
start_servers

measure() { measure_url "http://127.0.0.1:$1$TARGET"; }

# Warm every cache and check it really serves hits.
for port in $cachalot_port $nginx_port $varnish_port; do measure "$port" >/dev/null; done
if [ "${PURGE_UNRELATED:-0}" = 1 ]; then
  curl -sf -XPOST "http://127.0.0.1:$cachalot_admin/purge" -d '{"tag": "unrelated"}' >&2
fi
origin_before=$(curl -s "http://127.0.0.1:$origin_port/" | sed 's/.*"origin_requests":\([0-9]*\).*/\1/')

for n in "${names[@]}"; do : > "$work/$n.txt"; done
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in 0 1 2; do
    measure "${ports[$i]}" >> "$work/${names[$i]}.txt"
    line="$line ${names[$i]} $(tail -1 "$work/${names[$i]}.txt")"
  done
  echo "$line" >&2
done
origin_after=$(curl -s "http://127.0.0.1:$origin_port/" | sed 's/.*"origin_requests":\([0-9]*\).*/\1/')

echo
echo "cache hits of a 1 KiB JSON ($TARGET), $ROUNDS rounds of $DURATION, $CONNECTIONS connections, medians"
echo "(origin requests during the measured rounds: $((origin_after - origin_before - 1)))"
printf '| server | requests/s | p99 ms |\n|---|---|---|\n'
declare -A rps p99
for n in "${names[@]}"; do
  rps[$n]=$(cut -d' ' -f1 "$work/$n.txt" | median); p99[$n]=$(cut -d' ' -f2 "$work/$n.txt" | median)
  printf '| %s | %.0f | %.2f |\n' "$n" "${rps[$n]}" "${p99[$n]}"
done
for peer in nginx varnish; do
  paired=$(paired_ratio "$work/cachalot.txt" "$work/$peer.txt")
  awk -v a="${rps[cachalot]}" -v b="${rps[$peer]}" -v c="${p99[cachalot]}" -v d="${p99[$peer]}" -v n="$peer" -v r="$paired" \
    'BEGIN {printf "cachalot/%s: throughput %.2fx (median of round ratios %.2fx), p99 %.2fx\n", n, a/b, r, c/d}'
done
