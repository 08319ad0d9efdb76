-- wrk twin of loadtest/traffic.k6.js (loadtest/traffic.sh runs it): the same Zipf key
-- distribution over the same three routes, the same shares of authenticated requests and of
-- updates, and the same hit ratio read from Cache-Status (over GETs answered with a shared
-- response: an authenticated GET of a public object may be a hit; private answers are left out).
-- Parameters from the environment: ALPHA, KEYS, AUTH_SHARE, UNSAFE_SHARE.
local alpha = tonumber(os.getenv("ALPHA") or "1.1")
local keys = tonumber(os.getenv("KEYS") or "1000")
local auth_share = tonumber(os.getenv("AUTH_SHARE") or "0.05")
local unsafe_share = tonumber(os.getenv("UNSAFE_SHARE") or "0.01")

local endpoints = {
  {name = "catalog", query = "ttl=300&size=2048"},
  {name = "prices", query = "ttl=30&swr=30&size=256"},
  {name = "profile", query = "ttl=60&size=1024&vary=Accept-Language"},
}
local languages = {"en", "de", "fr"}

local cdf = {}
do
  local total = 0
  for k = 1, keys do total = total + 1 / (k ^ alpha); cdf[k] = total end
  for k = 1, keys do cdf[k] = cdf[k] / total end
end

local function zipf_key()
  local u, lo, hi = math.random(), 1, keys
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

-- Per thread counts. (Responses on a thread's connections come in any order, so each is
-- classified by itself: 204 an update, Cache-Control private an authenticated request.)
counted, hits, stale, collapsed, failed, updates, private = 0, 0, 0, 0, 0, 0, 0

function init(args)
  math.randomseed(os.time() * 1000 + id)
end

function request()
  local e = endpoints[math.random(#endpoints)]
  local path = "/w/" .. e.name .. "-" .. zipf_key() .. "?" .. e.query
  local headers = {}
  if e.name == "profile" then headers["Accept-Language"] = languages[math.random(#languages)] end
  local roll = math.random()
  if roll < unsafe_share then return wrk.format("POST", path, headers, "") end
  if roll < unsafe_share + auth_share then headers["Authorization"] = "Bearer user-" .. math.random(100) end
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  if status == 204 then updates = updates + 1; return end
  if status ~= 200 then failed = failed + 1; return end
  if (headers["Cache-Control"] or ""):find("^private") then private = private + 1; return end
  local cs = headers["Cache-Status"] or ""
  counted = counted + 1
  if cs:find("; hit") then hits = hits + 1 end
  if cs:find("detail=stale%-while%-revalidate") or cs:find("detail=stale%-if%-error") or
     cs:find("detail=disconnected") or cs:find("detail=grace") then stale = stale + 1 end
  if cs:find("collapsed") then collapsed = collapsed + 1 end
end

function done(summary, latency, requests)
  local t = {counted = 0, hits = 0, stale = 0, collapsed = 0, failed = 0, updates = 0, private = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local total = summary.requests
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  local hit_ratio = t.counted > 0 and t.hits / t.counted or 0
  local p95 = latency:percentile(95) / 1000
  local failed_share = (t.failed + errors) / math.max(total, 1)
  io.write(string.format("requests %d (%.0f/s), shared GETs %d, private GETs %d, updates %d\n",
    total, total / (summary.duration / 1e6), t.counted, t.private, t.updates))
  io.write(string.format("cache_hit %.3f, stale_served %d, collapsed %d\n", hit_ratio, t.stale, t.collapsed))
  io.write(string.format("latency p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n",
    latency:percentile(50) / 1000, p95, latency:percentile(99) / 1000))
  io.write(string.format("failed %d (%.4f%%)\n", t.failed + errors, 100 * failed_share))
  local ok = hit_ratio > 0.70 and p95 < 50 and failed_share < 0.001
  io.write(string.format("thresholds (cache_hit > 0.70, p95 < 50 ms, failed < 0.1%%): %s\n", ok and "PASS" or "FAIL"))
end
