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

work="$(mktemp -d /tmp/cachalot-bench-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

origin_port=18081; cachalot_port=18080; cachalot_admin=19090; nginx_port=18082

require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port

# The origin and wrk share CPU 0, each proxy gets CPU 1 to itself.
taskset -c 0 build/release/cachalot-demo-origin "$origin_port" >/dev/null & pids+=($!)

cat > "$work/cachalot.yaml" <<YAML
listen:
  proxy: {address: 127.0.0.1, port: $cachalot_port}
  admin: {address: 127.0.0.1, port: $cachalot_admin}
workers: 1
upstreams:
  - {name: origin, host: 127.0.0.1, port: $origin_port, max_idle_connections: 256}
routes:
  - {name: all, upstream: origin, cache: {enabled: false}}   # pass-through: no cache
cache:
  l1: {path: $work/l1, size: 32MiB}
logging: {level: warn, access_log: false}
YAML
taskset -c 1 build/release/cachalot --config "$work/cachalot.yaml" & pids+=($!)

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & pids+=($!)

for port in $origin_port $cachalot_port $nginx_port; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a server failed to start" >&2; exit 1; }; done

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
awk -v a="$c_rps" -v b="$n_rps" -v c="$c_p99" -v d="$n_p99" \
  'BEGIN {printf "cachalot/nginx: throughput %.2fx, p99 %.2fx\n", a/b, c/d}'
