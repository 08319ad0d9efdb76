// k6 twin of loadtest/stampede.sh: CLIENTS virtual users each send one request for the same
// cold key at once (a new key per run: pass KEY), behind an origin that takes 300 ms.
// Read the origin's request count before and after (GET /stats on the demo origin).
//   k6 run -e TARGET=http://127.0.0.1:8080 -e KEY=run1 -e CLIENTS=500 loadtest/stampede.k6.js
import http from 'k6/http';
import { check } from 'k6';

const clients = Number(__ENV.CLIENTS || 500);

export const options = {
  scenarios: {
    stampede: { executor: 'per-vu-iterations', vus: clients, iterations: 1, maxDuration: '30s' },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
  },
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

const url = `${__ENV.TARGET || 'http://127.0.0.1:8080'}/slow?k=${__ENV.KEY || Date.now()}`;

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
