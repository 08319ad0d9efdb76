# Shared by the wrk benchmarks: sourced, not run.

# Refuses to start when a benchmark port is taken (a stale server would be measured instead).
require_free_ports() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is already in use: stop what listens there first" >&2; exit 1
    fi
  done
}

# wrk on CPU 0 against URL → "requests_per_s p99_ms"
measure_url() {
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$1" |
    awk '/Requests\/sec/ {rps=$2}
         $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
         /Non-2xx or 3xx responses/ {bad=$NF}
         END {if (bad > 0) {print "measure: " bad " non-2xx/3xx responses: not a valid measurement" > "/dev/stderr"; exit 1}
              print rps, p99}'
}

# Median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Median of the rounds' own throughput ratios, FILE_A / FILE_B (measure_url lines, one per round).
# Each round measures the servers back to back, so the machine's drift between rounds cancels out.
paired_ratio() { paste -d' ' "$1" "$2" | awk '{print $1/$3}' | median; }

# The benchmark servers' ports. require_free_ports refuses to start when one is taken.
origin_port=18081; cachalot_port=18080; cachalot_admin=19090; nginx_port=18082; varnish_port=18083
names=(cachalot nginx varnish); ports=($cachalot_port $nginx_port $varnish_port)

# Makes $work and $pids, and a trap that stops everything and removes $work on exit.
setup_work() {
  work="$(mktemp -d /tmp/cachalot-bench-XXXXXX)"
  chmod 755 "$work"
  pids=()
  trap cleanup EXIT
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# The demo origin on CPU 0 (it shares CPU 0 with the load generator).
start_origin() {
  taskset -c 0 build/release/cachalot-demo-origin "$origin_port" >/dev/null & pids+=($!)
}

# Writes $work/cachalot.yaml: one worker in front of the origin, on the benchmark's ports.
# $CACHALOT_ROUTE adds keys to the route's flow map (e.g. "cache: {enabled: false}");
# $CACHALOT_CACHE (YAML lines under `cache:`) replaces the default 64 MiB L1.
cachalot_config() {
  local default_cache="  l1: {path: $work/l1, size: 64MiB}"
  cat > "$work/cachalot.yaml" <<YAML
listen:
  proxy: {address: 127.0.0.1, port: $cachalot_port}
  admin: {address: 127.0.0.1, port: $cachalot_admin}
workers: 1
upstreams:
  - {name: origin, host: 127.0.0.1, port: $origin_port, max_idle_connections: 256}
routes:
  - {name: all, upstream: origin${CACHALOT_ROUTE:+, $CACHALOT_ROUTE}}
cache:
${CACHALOT_CACHE:-$default_cache}
logging: {level: warn, access_log: false}
YAML
}

# Cachalot (cachalot_config) on CPU 1 ($1: taskset CPU list, default 1; "" leaves it unpinned).
start_cachalot() {
  cachalot_config
  local cpu="${1-1}"
  if [ -n "$cpu" ]; then
    taskset -c "$cpu" build/release/cachalot --config "$work/cachalot.yaml" & pids+=($!)
  else
    build/release/cachalot --config "$work/cachalot.yaml" & pids+=($!)
  fi
}

# Writes $1/nginx.conf: one worker in the foreground, its pid and error log in $1, no access
# log, and the http block's directives from stdin.
nginx_conf() {
  { cat <<NGINX
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
NGINX
    cat; echo "}"; } > "$1/nginx.conf"
}

# nginx's proxy directives: keep-alive to the origin, and what Cachalot sends an origin besides
# the client's fields (the client's Host; X-Forwarded-For, -Proto and -Host; Forwarded; Via),
# as deployments configure nginx. The origin shares CPU 0 with wrk, so both proxies must hand it
# the same work: without these, each Cachalot request cost the origin five more fields to parse.
nginx_forwarding='proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "for=\"$remote_addr\";host=\"$http_host\";proto=$scheme";
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header Via "1.1 nginx";'

# nginx with one worker on CPU 1. $1 = cache: proxy_cache with proxy_cache_lock and background
# updates (so it honours stale-while-revalidate); plain: a reverse proxy without cache.
start_nginx() {
  local cache_directives=""
  if [ "$1" = cache ]; then
    mkdir -p "$work/nginx/cache"
    cache_directives="proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;
      proxy_cache_background_update on;"
  fi
  mkdir -p "$work/nginx"
  nginx_conf "$work/nginx" <<NGINX
  proxy_cache_path $work/nginx/cache keys_zone=bench:10m max_size=64m;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      $cache_directives
      proxy_pass http://origin;
      $nginx_forwarding
    }
  }
NGINX
  taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & pids+=($!)
}

# Varnish on CPU 1: one thread pool, default VCL (caches per Cache-Control; its waiting list
# coalesces; stale-while-revalidate becomes grace), memory storage.
start_varnish() {
  taskset -c 1 varnishd -F -n "$work/varnish" -a "127.0.0.1:$varnish_port" -b "127.0.0.1:$origin_port" \
    -s malloc,64m -p thread_pools=1 -p thread_pool_min=10 >/dev/null 2>&1 & pids+=($!)
}

# Waits until every port given answers GET $READY_PATH (default /1k); fails if a server died.
await_ready() {
  for port in "$@"; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port${READY_PATH:-/1k}" && break; sleep 0.1; done
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a server failed to start" >&2; exit 1; }; done
}

# The three caches and the origin, for the comparative benchmarks.
start_servers() {
  require_free_ports $origin_port $cachalot_port $cachalot_admin $nginx_port $varnish_port
  start_origin
  start_cachalot
  start_nginx cache
  start_varnish
  await_ready $origin_port $cachalot_port $nginx_port $varnish_port
}

# Requests the demo origin has answered to /slow and /slow-swr.
origin_slow_count() { curl -s "http://127.0.0.1:$origin_port/stats" | sed 's/.*"slow":\([0-9]*\).*/\1/'; }
