// k6 twin of loadtest/passthrough.sh: constant load against one proxy, p99 and throughput.
//   k6 run -e TARGET=http://127.0.0.1:8080/ -e VUS=50 -e DURATION=10s loadtest/passthrough.k6.js
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 50),
  duration: __ENV.DURATION || '10s',
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: [`p(99)<${Number(__ENV.P99_MS || 50)}`],  // the seeds' latency budget
    checks: ['rate==1'],
  },
  summaryTrendStats: ['med', 'p(90)', 'p(99)', 'max'],
};

const target = __ENV.TARGET || 'http://127.0.0.1:8080/';

export default function () {
  const res = http.get(target);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
