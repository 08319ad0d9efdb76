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
         END {print rps, p99}'
}

# Median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
