// Chaos: Redis (the L2) restarted during load. Nothing may fail: while Redis is away the L2 is
// skipped (its breaker opens), requests are served from the L1 and the origin, and the L2 is
// used again once Redis answers.
//
// The external step (k6 does not restart processes): while the `steady` stage runs, restart
// the Redis that cache.l2.address names, e.g. 20 s into the run:
//   (sleep 20; systemctl restart redis-server) &   # or: docker-compose restart redis
//   k6 run -e TARGET=http://127.0.0.1:8080 loadtest/redis-restart.k6.js
// Its twin that runs here and does the restart itself: loadtest/redis-restart.sh.
import http from 'k6/http';
import { check } from 'k6';

const target = __ENV.TARGET || 'http://127.0.0.1:8080';

export const options = {
  scenarios: {
    load: {
      executor: 'ramping-arrival-rate',
      startRate: 50,
      timeUnit: '1s',
      preAllocatedVUs: 50,
      maxVUs: 200,
      stages: [
        { target: 300, duration: '10s' },  // ramp up
        { target: 300, duration: '40s' },  // steady: restart Redis now
        { target: 0, duration: '5s' },
      ],
    },
  },
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
};

export default function () {
  // A spread of keys, so that some are L1 misses that the L2 would answer.
  const key = Math.floor(Math.random() * 5000);
  const res = http.get(`${target}/w/item-${key}?ttl=120&size=2048`, { tags: { endpoint: 'item' } });
  check(res, { 'status 200': (r) => r.status === 200 });
}
