// k6 twin of loadtest/swr.sh: constant load on an object that goes stale every second and is
// served stale while revalidated (/slow-swr), and on a plain hit (/1k), as two scenarios
// whose latencies are reported apart (tag `object`).
//   k6 run -e TARGET=http://127.0.0.1:8080 -e VUS=50 -e DURATION=8s loadtest/swr.k6.js
import http from 'k6/http';
import { check } from 'k6';

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
    'http_req_duration{object:hit}': ['p(99)>=0'],
    'http_req_duration{object:swr}': ['p(99)>=0'],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

export function hit() {
  check(http.get(`${target}/1k`), { 'status is 200': (r) => r.status === 200 });
}

export function swr() {
  check(http.get(`${target}/slow-swr`), { 'status is 200': (r) => r.status === 200 });
}
