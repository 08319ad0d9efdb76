// An API cache's workload against Cachalot in front of the demo origin's /w/ objects
// (config/cachalot.yaml, or the compose stack), with thresholds that fail:
//   - keys drawn from a Zipf distribution (ALPHA, KEYS) over three routes with different
//     lifetimes (tag `endpoint`: catalog 300 s, prices 30 s with stale-while-revalidate,
//     profile 60 s varying on Accept-Language);
//   - AUTH_SHARE of requests carry Authorization (the origin answers them `private`: never
//     shared, so they are misses by design);
//   - UNSAFE_SHARE of requests are POSTs that invalidate the object (RFC 9111 §4.4).
// Custom metrics from Cache-Status: cache_hit (a Rate over GETs answered with a shared response),
// stale_served, collapsed.
//   k6 run -e TARGET=http://127.0.0.1:8080 -e RATE=500 -e DURATION=60s loadtest/traffic.k6.js
// Its twin that runs here (wrk + Lua, same distribution and shares): loadtest/traffic.sh.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';
const alpha = Number(__ENV.ALPHA || 1.1);
const keys = Number(__ENV.KEYS || 1000);
const authShare = Number(__ENV.AUTH_SHARE || 0.05);
const unsafeShare = Number(__ENV.UNSAFE_SHARE || 0.01);

export const cacheHit = new Rate('cache_hit');
export const staleServed = new Counter('stale_served');
export const collapsed = new Counter('collapsed');

export const options = {
  scenarios: {
    traffic: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 500),
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
  },
  thresholds: {
    cache_hit: ['rate>0.70'],                 // the seeds' hit-ratio target
    http_req_duration: ['p(95)<50'],          // the seeds' latency budget, ms
    http_req_failed: ['rate<0.001'],
    'http_req_duration{endpoint:catalog}': ['p(95)<50'],
    'http_req_duration{endpoint:prices}': ['p(95)<50'],
    'http_req_duration{endpoint:profile}': ['p(95)<50'],
  },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
};

const endpoints = [
  { name: 'catalog', query: 'ttl=300&size=2048' },
  { name: 'prices', query: 'ttl=30&swr=30&size=256' },
  { name: 'profile', query: 'ttl=60&size=1024&vary=Accept-Language' },
];
const languages = ['en', 'de', 'fr'];

// Zipf(alpha) over 1..keys: the cumulative distribution, then a binary search per draw.
const cdf = (() => {
  const weights = [];
  let total = 0;
  for (let k = 1; k <= keys; k++) {
    total += 1 / Math.pow(k, alpha);
    weights.push(total);
  }
  return weights.map((w) => w / total);
})();

function zipfKey() {
  const u = Math.random();
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1;
}

// The demo origin's counters, to report how many requests reached it.
function originServed() {
  const origin = __ENV.ORIGIN;
  if (!origin) return null;
  return JSON.parse(http.get(`${origin}/stats`).body).workload;
}

export function setup() {
  return { originBefore: originServed() };
}

export default function () {
  const endpoint = endpoints[Math.floor(Math.random() * endpoints.length)];
  const url = `${target}/w/${endpoint.name}-${zipfKey()}?${endpoint.query}`;
  const headers = {};
  if (endpoint.name === 'profile') headers['Accept-Language'] = languages[Math.floor(Math.random() * languages.length)];
  const tags = { endpoint: endpoint.name };
  const roll = Math.random();
  if (roll < unsafeShare) {
    const res = http.post(url, null, { headers, tags: { endpoint: endpoint.name, kind: 'update' } });
    check(res, { 'update: 204': (r) => r.status === 204 });
    return;
  }
  const authenticated = roll < unsafeShare + authShare;
  if (authenticated) headers.Authorization = `Bearer user-${Math.floor(Math.random() * 100)}`;
  const res = http.get(url, { headers, tags: authenticated ? { endpoint: endpoint.name, kind: 'private' } : tags });
  check(res, { 'status 200': (r) => r.status === 200 });
  const status = res.headers['Cache-Status'] || '';
  // (The hit ratio is over shared responses: an authenticated request may be a hit on a public
  // object; the origin's own answers to authenticated requests are private, never stored.)
  if (!/^private/.test(res.headers['Cache-Control'] || '')) cacheHit.add(/;\s*hit/.test(status), tags);
  // (detail=stale-while-revalidate, stale-if-error, disconnected or grace: a stale response served)
  if (/detail=(stale-while-revalidate|stale-if-error|disconnected|grace)/.test(status)) staleServed.add(1, tags);
  if (/collapsed/.test(status)) collapsed.add(1, tags);
}

export function teardown(data) {
  const after = originServed();
  if (after !== null && data.originBefore !== null) console.log(`origin requests during the run: ${after - data.originBefore}`);
}
