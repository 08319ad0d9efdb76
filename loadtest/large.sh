#!/usr/bin/env bash
# Large objects through Cachalot, nginx (proxy_cache) and Varnish, in the same run, in front of
# one nginx origin serving a 50 MiB file (Cache-Control: max-age=60):
#   1. time to first byte and to the last on a 50 MiB miss from an origin that sends at a limited
#      rate (ORIGIN_RATE, default 20m bytes/s: about 2.6 s per object). Each round asks each
#      proxy for a new URL (a miss), in turn.
#   2. peak resident memory of each proxy while CONCURRENT (default 200) clients each fetch a
#      different 50 MiB object (all misses) at CLIENT_RATE (default 8M bytes/s each).
# Prints medians (1) and the peaks (2), with Cachalot's ratios.
#   ROUNDS=5 CONCURRENT=200 loadtest/large.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
CONCURRENT="${CONCURRENT:-200}"
ORIGIN_RATE="${ORIGIN_RATE:-20m}"
CLIENT_RATE="${CLIENT_RATE:-8M}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port $varnish_port

# The origin: nginx serving the file, /slow/ at ORIGIN_RATE. The query string makes each URL a
# new object for the caches; the origin ignores it.
mkdir -p "$work/www" "$work/origin"
head -c $((50 << 20)) /dev/urandom > "$work/www/big"
nginx_conf "$work/origin" <<NGINX
  sendfile on;
  server {
    listen 127.0.0.1:$origin_port;
    root $work/www;
    add_header Cache-Control "max-age=60";
    location /slow/ { alias $work/www/; limit_rate $ORIGIN_RATE; add_header Cache-Control "max-age=60"; }
  }
NGINX
taskset -c 0 nginx -p "$work/origin" -c "$work/origin/nginx.conf" -e "$work/origin/error.log" & pids+=($!)
start_cachalot
start_nginx cache
start_varnish
READY_PATH=/big?ready await_ready $origin_port $cachalot_port $nginx_port $varnish_port

# 1. Time to first byte and total time of a miss, per proxy, ROUNDS times.
for name in "${names[@]}"; do : > "$work/ttfb-$name.txt"; done
for r in $(seq "$ROUNDS"); do
  for i in "${!names[@]}"; do
    curl -s -o /dev/null -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
      "http://127.0.0.1:${ports[$i]}/slow/big?ttfb=$r" >> "$work/ttfb-${names[$i]}.txt"
  done
  echo "round $r: $(for n in "${names[@]}"; do printf '%s %s  ' "$n" "$(tail -1 "$work/ttfb-$n.txt")"; done)" >&2
done

# 2. Peak RSS with CONCURRENT large misses in flight. The peak is each process' VmHWM (nginx:
# master and worker summed; Varnish: manager and child summed), read after the run.
pids_of() {  # the server's processes: the one started and its children
  local pid=$1; echo "$pid"; pgrep -P "$pid" || true
}
peak_kib() { local sum=0; for p in $(pids_of "$1"); do
    sum=$((sum + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $sum; }
declare -A before
for i in "${!names[@]}"; do before[${names[$i]}]=$(peak_kib "${pids[$((i + 1))]}"); done
for i in "${!names[@]}"; do
  : > "$work/conc-${names[$i]}.txt"
  clients=()
  for c in $(seq "$CONCURRENT"); do
    curl -s -o /dev/null --limit-rate "$CLIENT_RATE" -w '%{http_code} %{size_download}\n' \
      "http://127.0.0.1:${ports[$i]}/big?c=$c" >> "$work/conc-${names[$i]}.txt" & clients+=($!)
  done
  wait "${clients[@]}" || true
done
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

echo
echo "50 MiB misses, origin at $ORIGIN_RATE/s, $ROUNDS rounds, medians"
printf '| proxy | first byte s | last byte s |\n|---|---|---|\n'
for n in "${names[@]}"; do
  printf '| %s | %.3f | %.2f |\n' "$n" "$(cut -d' ' -f1 "$work/ttfb-$n.txt" | median)" \
    "$(cut -d' ' -f2 "$work/ttfb-$n.txt" | median)"
done
echo
echo "$CONCURRENT concurrent 50 MiB misses at $CLIENT_RATE/s per client"
printf '| proxy | complete 200s | peak RSS MiB (before: MiB) |\n|---|---|---|\n'
for i in "${!names[@]}"; do
  n=${names[$i]}
  ok=$(awk -v size=$((50 << 20)) '$1 == 200 && $2 == size' "$work/conc-$n.txt" | wc -l)
  printf '| %s | %d/%d | %s (%s) |\n' "$n" "$ok" "$CONCURRENT" "$(mib "$(peak_kib "${pids[$((i + 1))]}")")" \
    "$(mib "${before[$n]}")"
done
