#!/usr/bin/env bash
# User-space instructions per pass-through request, Cachalot next to nginx: each runs under
# valgrind's callgrind (one worker, no cache, keep-alive upstream, the demo origin), counting
# only while wrk drives it, so start-up is left out. Instruction counts do not depend on the
# machine's noise the way requests/s do: this is how the pass-through work is compared from one
# change to the next. (Under valgrind both run many times slower: the counts, not the rates.)
#   REQUEST_SECONDS=10 loadtest/instructions.sh
#   CACHALOT_BIN=/path/to/older/cachalot loadtest/instructions.sh     (to compare builds)
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
REQUEST_SECONDS="${REQUEST_SECONDS:-10}"
CACHALOT_BIN="${CACHALOT_BIN:-build/release/cachalot}"

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port
start_origin
CACHALOT_ROUTE="cache: {enabled: false}" cachalot_config
mkdir -p "$work/nginx"
nginx_conf "$work/nginx" <<NGINX
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://origin; $nginx_forwarding }
  }
NGINX
sed -i 's/^worker_processes 1;/master_process off;/' "$work/nginx/nginx.conf"  # one process to count

# count NAME PORT COMMAND...: instructions per request while wrk drives PORT for REQUEST_SECONDS.
count() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.out" "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  callgrind_control -i on $pid >/dev/null 2>&1
  local requests
  requests=$(taskset -c 0 wrk -t1 -c10 -d"${REQUEST_SECONDS}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -i off $pid >/dev/null 2>&1
  kill -INT $pid 2>/dev/null || true; sleep 1; kill -QUIT $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  local total
  total=$(callgrind_annotate "$work/$name.out"* 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
  echo "$name $requests $total"
}

{
  count cachalot $cachalot_port "$CACHALOT_BIN" --config "$work/cachalot.yaml"
  count nginx $nginx_port nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log"
} | awk '{n[$1]=$3/$2; printf "%-9s %7d requests  %8.0f instructions/request\n", $1, $2, $3/$2}
         END {printf "cachalot/nginx: %.2fx the instructions\n", n["cachalot"]/n["nginx"]}'
