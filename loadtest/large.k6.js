// k6 twin of loadtest/large.sh: large-object misses through one proxy. Each iteration asks for
// a new URL (a miss) of a large origin object; k6 reports time to first byte
// (http_req_waiting) and the whole transfer (http_req_duration). Run the proxy's peak memory
// alongside (e.g. /proc/PID/status VmHWM), as large.sh does.
//   k6 run -e TARGET=http://127.0.0.1:8080/big -e VUS=200 -e ITERATIONS=200 loadtest/large.k6.js
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';

export const options = {
  scenarios: {
    misses: {
      executor: 'shared-iterations',
      vus: Number(__ENV.VUS || 200),
      iterations: Number(__ENV.ITERATIONS || 200),
      maxDuration: __ENV.MAX_DURATION || '10m',
    },
  },
  // 200 bodies of 50 MiB would be 10 GiB in k6 itself: they are read and dropped. A body cut
  // short fails the request (http_req_failed).
  discardResponseBodies: true,
  thresholds: {
    http_req_failed: ['rate<0.001'],
    // Streaming: the first byte comes while the origin still sends, not after the whole body
    // (from a rate-limited origin, the whole 50 MiB takes seconds). TTFB_MS to tune.
    http_req_waiting: [`p(95)<${Number(__ENV.TTFB_MS || 1000)}`],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['med', 'p(90)', 'p(99)', 'max'],
};

const target = __ENV.TARGET || 'http://127.0.0.1:8080/big';
export default function () {
  const res = http.get(`${target}?k6=${exec.scenario.iterationInTest}`);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
