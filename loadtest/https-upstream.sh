#!/usr/bin/env bash
# HTTPS against plain HTTP to the origin, for Cachalot and for nginx as pass-through proxies (no
# cache, keep-alive to the origin, 1 worker each) in the same run. The origin is an nginx on
# CPU 0 (beside wrk) answering 200 with a small body on a plain and on a TLS port (TLS 1.3,
# a P-256 certificate from a CA this script makes); each proxy, on CPU 1, sends /tls/… to the
# TLS port, verified against that CA, and the rest to the plain one. Session reuse is on in
# both (Cachalot always; nginx's proxy_ssl_session_reuse is on by default).
#   ROUNDS=5 DURATION=10s CONNECTIONS=50 loadtest/https-upstream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"
tls_port=18443

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $origin_port $tls_port $cachalot_port $cachalot_admin $nginx_port

# A throwaway CA and a certificate for 127.0.0.1.
key="openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
$key -x509 -days 2 -subj /CN=bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
$key -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "$work/origin.key" -out "$work/origin.csr" 2>/dev/null
openssl x509 -req -days 2 -copy_extensions copy -in "$work/origin.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -set_serial 1 -out "$work/origin.pem" 2>/dev/null

# The origin: nginx on CPU 0, plain and TLS.
mkdir -p "$work/origin"
nginx_conf "$work/origin" <<NGINX
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$origin_port;
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $work/origin.pem;
    ssl_certificate_key $work/origin.key;
    ssl_protocols TLSv1.3;
    location / { add_header Cache-Control no-store; return 200 "hello from the origin\n"; }
  }
NGINX
taskset -c 0 nginx -p "$work/origin" -c "$work/origin/nginx.conf" -e "$work/origin/error.log" & pids+=($!)

cat > "$work/cachalot.yaml" <<YAML
listen:
  proxy: {address: 127.0.0.1, port: $cachalot_port}
  admin: {address: 127.0.0.1, port: $cachalot_admin}
workers: 1
upstreams:
  - {name: plain, host: 127.0.0.1, port: $origin_port, max_idle_connections: 256}
  - {name: tls, host: 127.0.0.1, port: $tls_port, max_idle_connections: 256, tls: {ca_file: $work/ca.pem}}
routes:
  - {name: tls, match: {path_prefix: /tls/}, upstream: tls, cache: {enabled: false}}
  - {name: plain, upstream: plain, cache: {enabled: false}}
cache:
  l1: {size: 0}
logging: {level: warn, access_log: false}
YAML
taskset -c 1 build/release/cachalot --config "$work/cachalot.yaml" & pids+=($!)

mkdir -p "$work/nginx"
nginx_conf "$work/nginx" <<NGINX
  upstream plain { server 127.0.0.1:$origin_port; keepalive 256; }
  upstream tls { server 127.0.0.1:$tls_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    $nginx_forwarding
    location /tls/ {
      proxy_pass https://tls;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $work/ca.pem;
      proxy_ssl_name 127.0.0.1;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.3;
    }
    location / { proxy_pass http://plain; }
  }
NGINX
taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & pids+=($!)

READY_PATH=/ await_ready $origin_port $cachalot_port $nginx_port
READY_PATH=/tls/ await_ready $cachalot_port $nginx_port
for p in $cachalot_port $nginx_port; do
  status=$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$p/tls/")
  [ "$status" = 200 ] || { echo "GET /tls/ on port $p: $status (see $work)" >&2; cat "$work"/*/error.log >&2; exit 1; }
done

runs=(cachalot-http cachalot-https nginx-http nginx-https)
url() {
  case "$1" in
    cachalot-http) echo "http://127.0.0.1:$cachalot_port/" ;;
    cachalot-https) echo "http://127.0.0.1:$cachalot_port/tls/" ;;
    nginx-http) echo "http://127.0.0.1:$nginx_port/" ;;
    nginx-https) echo "http://127.0.0.1:$nginx_port/tls/" ;;
  esac
}
for r in "${runs[@]}"; do measure_url "$(url "$r")" >/dev/null; : > "$work/$r.txt"; done  # warm-up
for round in $(seq "$ROUNDS"); do
  line="round $round:"
  for r in "${runs[@]}"; do
    measure_url "$(url "$r")" >> "$work/$r.txt"
    line+=" $r $(tail -1 "$work/$r.txt")"
  done
  echo "$line" >&2
done

echo
echo "pass-through to an HTTPS origin and to a plain one, $ROUNDS rounds of $DURATION, $CONNECTIONS connections, medians"
printf '| proxy, origin | requests/s | p99 ms |\n|---|---|---|\n'
for r in "${runs[@]}"; do
  printf '| %s | %.0f | %.2f |\n' "$r" "$(cut -d' ' -f1 "$work/$r.txt" | median)" "$(cut -d' ' -f2 "$work/$r.txt" | median)"
done
for p in cachalot nginx; do
  echo "$p: https/http throughput $(paired_ratio "$work/$p-https.txt" "$work/$p-http.txt") (median of round ratios)"
done
echo "https: cachalot/nginx throughput $(paired_ratio "$work/cachalot-https.txt" "$work/nginx-https.txt")"
curl -s "http://127.0.0.1:$cachalot_admin/metrics" | grep '^cachalot_upstream_tls_handshakes_total' || true
