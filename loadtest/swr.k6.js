// k6 twin of loadtest/swr.sh: constant load on an object that goes stale every second and is
// served stale while revalidated (/slow-swr), and on a plain hit (/1k), as two scenarios
// whose latencies are reported apart (tag `object`).
// The stale object must be served as fast as the plain hit (never waiting for the 300 ms
// origin), and with ORIGIN (the demo origin's base URL) it must have been revalidated about once
// a second, not once per request.
//   k6 run -e TARGET=http://127.0.0.1:8080 -e ORIGIN=http://127.0.0.1:8081 -e VUS=50 -e DURATION=8s loadtest/swr.k6.js
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

export const originFetches = new Counter('origin_fetches');  // recorded in teardown
export const servedStale = new Rate('served_stale');          // of /slow-swr responses, from Cache-Status

const vus = Number(__ENV.VUS || 50);
const duration = __ENV.DURATION || '8s';
const target = __ENV.TARGET || 'http://127.0.0.1:8080';

export const options = {
  scenarios: {
    hit: { executor: 'constant-vus', vus, duration, exec: 'hit', tags: { object: 'hit' } },
    swr: { executor: 'constant-vus', vus, duration, exec: 'swr', startTime: duration, tags: { object: 'swr' } },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{object:hit}': ['p(99)<50'],
    'http_req_duration{object:swr}': ['p(99)<50'],  // a revalidation never holds a client up
    served_stale: ['rate>0'],
    // One revalidation per second of the swr scenario, give or take: never one per request.
    origin_fetches: [`count<=${Math.ceil(parseFloat(duration)) + 5}`],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

export function hit() {
  check(http.get(`${target}/1k`), { 'status is 200': (r) => r.status === 200 });
}

export function swr() {
  const res = http.get(`${target}/slow-swr`);
  check(res, { 'status is 200': (r) => r.status === 200 });
  servedStale.add(/detail=stale-while-revalidate/.test(res.headers['Cache-Status'] || ''));
}

function slowServed() {
  return __ENV.ORIGIN ? JSON.parse(http.get(`${__ENV.ORIGIN}/stats`).body).slow : 0;
}

export function setup() {
  return { before: slowServed() };
}

export function teardown(data) {
  originFetches.add(slowServed() - data.before);
}
