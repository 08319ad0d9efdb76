#!/usr/bin/env bash
# Cache-hit benchmark: Cachalot, nginx (proxy_cache) and Varnish in front of the same demo origin,
# each with one worker pinned to CPU 1, all serving the demo origin's 1 KiB cacheable JSON
# (/1k) from cache; wrk (1 thread) on CPU 0. Rounds alternate between the three so drift hits
# all alike. Prints medians of requests/s and p99, and Cachalot's ratios to each peer.
#   ROUNDS=5 DURATION=8s CONNECTIONS=50 loadtest/hit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-50}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

work="$(mktemp -d /tmp/cachalot-bench-XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

origin_port=18081; cachalot_port=18080; cachalot_admin=19090; nginx_port=18082; varnish_port=18083
require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port $varnish_port

taskset -c 0 build/release/cachalot-demo-origin "$origin_port" >/dev/null & pids+=($!)

cat > "$work/cachalot.yaml" <<YAML
listen:
  proxy: {address: 127.0.0.1, port: $cachalot_port}
  admin: {address: 127.0.0.1, port: $cachalot_admin}
workers: 1
upstreams:
  - {name: origin, host: 127.0.0.1, port: $origin_port}
routes:
  - {name: all, upstream: origin}
cache:
  l1: {path: $work/l1, size: 64MiB}
logging: {level: warn, access_log: false}
YAML
taskset -c 1 build/release/cachalot --config "$work/cachalot.yaml" & pids+=($!)

mkdir -p "$work/nginx/cache"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $work/nginx/cache keys_zone=bench:10m max_size=64m;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & pids+=($!)

# Varnish: one thread pool, default VCL (caches per Cache-Control), memory storage.
taskset -c 1 varnishd -F -n "$work/varnish" -a "127.0.0.1:$varnish_port" -b "127.0.0.1:$origin_port" \
  -s malloc,64m -p thread_pools=1 -p thread_pool_min=10 >/dev/null 2>&1 & pids+=($!)

for port in $origin_port $cachalot_port $nginx_port $varnish_port; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/1k" && break; sleep 0.1; done
done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a server failed to start" >&2; exit 1; }; done

measure() { measure_url "http://127.0.0.1:$1/1k"; }

# Warm every cache and check it really serves hits.
for port in $cachalot_port $nginx_port $varnish_port; do measure "$port" >/dev/null; done
origin_before=$(curl -s "http://127.0.0.1:$origin_port/" | sed 's/.*"origin_requests":\([0-9]*\).*/\1/')

names=(cachalot nginx varnish); ports=($cachalot_port $nginx_port $varnish_port)
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
echo "cache hits of a 1 KiB JSON, $ROUNDS rounds of $DURATION, $CONNECTIONS connections, medians"
echo "(origin requests during the measured rounds: $((origin_after - origin_before - 1)))"
printf '| server | requests/s | p99 ms |\n|---|---|---|\n'
declare -A rps p99
for n in "${names[@]}"; do
  rps[$n]=$(cut -d' ' -f1 "$work/$n.txt" | median); p99[$n]=$(cut -d' ' -f2 "$work/$n.txt" | median)
  printf '| %s | %.0f | %.2f |\n' "$n" "${rps[$n]}" "${p99[$n]}"
done
for peer in nginx varnish; do
  awk -v a="${rps[cachalot]}" -v b="${rps[$peer]}" -v c="${p99[cachalot]}" -v d="${p99[$peer]}" -v n="$peer" \
    'BEGIN {printf "cachalot/%s: throughput %.2fx, p99 %.2fx\n", n, a/b, c/d}'
done
