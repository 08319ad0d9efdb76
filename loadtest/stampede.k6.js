// k6 twin of loadtest/stampede.sh: CLIENTS virtual users each send one request for the same
// cold key at once (a new key per run: pass KEY), behind an origin that takes 300 ms.
// With ORIGIN (the demo origin's base URL), setup() and teardown() read its /stats and the
// test fails unless the stampede reached the origin at most once (coalescing).
//   k6 run -e TARGET=http://127.0.0.1:8080 -e ORIGIN=http://127.0.0.1:8081 -e KEY=run1 -e CLIENTS=500 loadtest/stampede.k6.js
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

// Requests the origin saw for the stampede's key (recorded in teardown, checked by a threshold).
export const originFetches = new Counter('origin_fetches');

const clients = Number(__ENV.CLIENTS || 500);

export const options = {
  scenarios: {
    stampede: { executor: 'per-vu-iterations', vus: clients, iterations: 1, maxDuration: '30s' },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    origin_fetches: ['count<=1'],            // one fetch for all CLIENTS requests
    http_req_duration: ['p(99)<1500'],       // everyone waited for that one 300 ms fetch, not for a queue of them
    checks: ['rate==1'],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

const url = `${__ENV.TARGET || 'http://127.0.0.1:8080'}/slow?k=${__ENV.KEY || Date.now()}`;

function slowServed() {
  return __ENV.ORIGIN ? JSON.parse(http.get(`${__ENV.ORIGIN}/stats`).body).slow : 0;
}

export function setup() {
  return { before: slowServed() };
}

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}

export function teardown(data) {
  originFetches.add(slowServed() - data.before);
}
