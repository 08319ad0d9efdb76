#!/usr/bin/env bash
# Purge measurements, two Cachalot nodes (release build, one worker each) sharing one Redis:
#  1. latency: a URL purge on node A, from the call returning to node B refusing the entry
#     (B answers 504 to only-if-cached), over N purges (default 100): p50, p99, max;
#  2. one tag shared by ENTRIES stored responses (default 100 000): the time of the purge call,
#     the Redis memory the purge state uses, and what a per-tag Redis set of keys (Souin's
#     design) would hold for the same tag, computed from the key sizes.
#   N=100 ENTRIES=100000 loadtest/purge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
N="${N:-100}"
ENTRIES="${ENTRIES:-100000}"
redis_port=18084; b_port=18085; b_admin=19091

scripts/install-deps.sh bench
scripts/build.sh release >/dev/null

setup_work
require_free_ports $redis_port $origin_port $cachalot_port $cachalot_admin $b_port $b_admin
redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)
start_origin
CACHALOT_CACHE="  l1: {path: $work/l1-a, size: 256MiB}
  l2: {address: \"127.0.0.1:$redis_port\", command_timeout: 1s, write_queue: 100000}" start_cachalot ""
sed -e "s/port: $cachalot_port/port: $b_port/" -e "s/port: $cachalot_admin/port: $b_admin/" \
    -e "s|$work/l1-a|$work/l1-b|" "$work/cachalot.yaml" > "$work/b.yaml"
build/release/cachalot --config "$work/b.yaml" & pids+=($!)
await_ready $origin_port $cachalot_port $b_port

python3 - "$cachalot_port" "$cachalot_admin" "$b_port" "$N" "$ENTRIES" "$redis_port" <<'PY'
import http.client, json, subprocess, sys, time, statistics
a_port, a_admin, b_port, n, entries, redis_port = (int(x) for x in sys.argv[1:7])
HOST = {"Host": "api.bench"}  # one Host on both nodes: one key, shared through Redis
a = http.client.HTTPConnection("127.0.0.1", a_port)
b = http.client.HTTPConnection("127.0.0.1", b_port)
admin = http.client.HTTPConnection("127.0.0.1", a_admin)
def get(conn, path, extra={}):
    conn.request("GET", path, headers={**HOST, **extra})
    r = conn.getresponse(); r.read()
    return r.status, r.getheader("Cache-Status", "")
def purge(body):
    global admin
    t = time.perf_counter()
    try:
        admin.request("POST", "/purge", body=json.dumps(body))
    except (BrokenPipeError, ConnectionResetError):  # the admin listener closes idle connections
        admin = http.client.HTTPConnection("127.0.0.1", a_admin)
        t = time.perf_counter()
        admin.request("POST", "/purge", body=json.dumps(body))
    r = admin.getresponse(); r.read()
    assert r.status == 200, r.status
    return (time.perf_counter() - t) * 1000
def redis(*args):
    return subprocess.run(["redis-cli", "-p", str(redis_port), *args], capture_output=True, text=True).stdout.strip()

# 1. latency to the other node
lat = []
for i in range(n):
    path = f"/1k?purge={i}"
    get(a, path)
    deadline = time.time() + 5
    while not get(b, path)[1].startswith("cachalot; hit"):  # in b's own L1
        if time.time() > deadline: sys.exit("node B never held " + path)
    purge({"url": "http://api.bench" + path})
    t0 = time.perf_counter()
    while get(b, path, {"Cache-Control": "only-if-cached"})[0] != 504:
        if time.perf_counter() - t0 > 5: sys.exit("node B kept serving " + path)
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print(f"purge latency, {n} URL purges on node A until node B refuses the entry: "
      f"p50 {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms, max {lat[-1]:.2f} ms")

# 2. one tag on `entries` stored responses
before = int(redis("dbsize"))
for i in range(entries):
    if get(a, f"/1k-tagged?n={i}")[0] != 200: sys.exit("a tagged fetch failed")
deadline = time.time() + 60
while int(redis("dbsize")) < before + entries and time.time() < deadline: time.sleep(0.2)
stored = int(redis("dbsize")) - before
keys = redis("--scan", "--pattern", "*1k-tagged*").splitlines()
if not keys: sys.exit(f"no tagged entry reached Redis (dbsize {redis('dbsize')}, before {before})")
key = keys[0]
mem_before = redis("memory", "usage", "cachalot:purges")
call = purge({"tag": "bench"})
time.sleep(0.5)
mem_after = redis("memory", "usage", "cachalot:purges")
on_b = get(b, "/1k-tagged?n=7", {"Cache-Control": "only-if-cached"})[0]
print(f"tag purge over {stored} stored responses: the call took {call:.2f} ms; Redis purge state "
      f"(hash cachalot:purges, MEMORY USAGE) {mem_before or 0} -> {mem_after} bytes, {redis('hlen', 'cachalot:purges')} field(s); "
      f"node B then answers only-if-cached with {on_b}")
# A Redis set holding every key of the tag (Souin's per-tag index): per member an sds string (key
# bytes + 3-byte header + NUL, in jemalloc's 16-byte size classes) and a 24-byte dictEntry, plus
# 8 bytes per hash bucket (the next power of two).
member = (len(key) + 4 + 15) // 16 * 16 + 24
buckets = 1
while buckets < stored: buckets *= 2
print(f"a per-tag set of keys for that one tag would hold {stored} members x ~{member} B + {buckets * 8} B of "
      f"buckets = ~{(stored * member + buckets * 8) / 1048576:.1f} MiB (keys of {len(key)} B), one such set per tag, "
      f"and every purge would have to read and delete them all")
PY
