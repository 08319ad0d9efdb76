#!/usr/bin/env bash
# stale-while-revalidate benchmark: wrk keeps asking for the demo origin's /slow-swr (fresh for
# 1 s, then stale-while-revalidate for an hour; the origin takes 300 ms), so the entry expires
# about once a second during each run and is revalidated in the background. Its p99 is compared
# with a plain hit (/1k) on the same server, for Cachalot, nginx (proxy_cache_background_update
# and proxy_cache_use_stale updating) and Varnish (stale-while-revalidate becomes grace).
# Also counts the origin requests each run caused (ideally one per expiry).
#   ROUNDS=5 DURATION=8s CONNECTIONS=50 loadtest/swr.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-50}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
start_servers

# Warm: both objects stored everywhere.
for port in "${ports[@]}"; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/1k"
  curl -sf -o /dev/null "http://127.0.0.1:$port/slow-swr"
done

for n in "${names[@]}"; do : > "$work/$n-hit.txt"; : > "$work/$n-swr.txt"; done
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in 0 1 2; do
    n="${names[$i]}"
    measure_url "http://127.0.0.1:${ports[$i]}/1k" >> "$work/$n-hit.txt"
    before=$(origin_slow_count)
    echo "$(measure_url "http://127.0.0.1:${ports[$i]}/slow-swr") $(( $(origin_slow_count) - before ))" >> "$work/$n-swr.txt"
    line="$line $n hit $(tail -1 "$work/$n-hit.txt") swr $(tail -1 "$work/$n-swr.txt")"
  done
  echo "$line" >&2
done

echo
echo "stale-while-revalidate vs plain hit, $ROUNDS rounds of $DURATION, $CONNECTIONS connections, medians"
printf '| server | hit req/s | hit p99 ms | SWR req/s | SWR p99 ms | SWR p99 / hit p99 | origin requests per run |\n'
printf '|---|---|---|---|---|---|---|\n'
for n in "${names[@]}"; do
  hr=$(cut -d' ' -f1 "$work/$n-hit.txt" | median); hp=$(cut -d' ' -f2 "$work/$n-hit.txt" | median)
  sr=$(cut -d' ' -f1 "$work/$n-swr.txt" | median); sp=$(cut -d' ' -f2 "$work/$n-swr.txt" | median)
  so=$(cut -d' ' -f3 "$work/$n-swr.txt" | median)
  awk -v n="$n" -v hr="$hr" -v hp="$hp" -v sr="$sr" -v sp="$sp" -v so="$so" \
    'BEGIN {printf "| %s | %.0f | %.2f | %.0f | %.2f | %.2fx | %s |\n", n, hr, hp, sr, sp, sp/hp, so}'
done
