import { ServiceProcess, spawnService } from './support/service-process';
import { isolatedEnv, measurement, startApp, TestApp } from './support/test-app';

/** Generous: other test files may load the same 2 cores. */
const START_TIMEOUT_MS = 60_000;

const post = (t: TestApp, clientAddress: string) =>
  t.http
    .post('/measurements')
    .set('X-Forwarded-For', clientAddress)
    .send(measurement({ city_id: 'proxied' }));

describe('TRUST_PROXY: per-client rate limits behind a load balancer', () => {
  const env = (overrides: Record<string, string> = {}) =>
    isolatedEnv({ CONSUMER_ENABLED: 'false', RATE_LIMIT_PER_MINUTE: '2', ...overrides });

  it('with TRUST_PROXY=1, two anonymous clients with different X-Forwarded-For get separate buckets', async () => {
    const t = await startApp(env({ TRUST_PROXY: '1' }));
    try {
      await post(t, '203.0.113.1').expect(202);
      await post(t, '203.0.113.1').expect(202);
      await post(t, '203.0.113.1').expect(429);
      await post(t, '203.0.113.2').expect(202);
    } finally {
      await t.close();
    }
  });

  it('without TRUST_PROXY, X-Forwarded-For is ignored: every client behind the proxy shares one bucket', async () => {
    const t = await startApp(env());
    try {
      await post(t, '203.0.113.1').expect(202);
      await post(t, '203.0.113.1').expect(202);
      await post(t, '203.0.113.2').expect(429);
    } finally {
      await t.close();
    }
  });
});

interface AccessLine {
  level: number;
  msg: string;
  req?: { id?: string; method?: string; url?: string };
  res?: { statusCode?: number };
  responseTime?: number;
}

describe('operations of the built server: access log, request ids, HTTP metrics', () => {
  const API_KEY = 'ops-secret-key-5f1c2a';
  let service: ServiceProcess;

  beforeAll(async () => {
    service = await spawnService(
      isolatedEnv({ CONSUMER_ENABLED: 'false', API_KEYS: API_KEY, LOG_LEVEL: 'info' }),
      START_TIMEOUT_MS,
    );
  }, START_TIMEOUT_MS + 10_000);
  afterAll(async () => {
    await service?.kill('SIGTERM');
  });

  const accessLines = (): AccessLine[] =>
    service.logs.flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as AccessLine;
        return parsed.req && parsed.res ? [parsed] : [];
      } catch {
        return [];
      }
    });
  const waitForAccessLine = async (id: string): Promise<AccessLine> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = accessLines().find((l) => l.req?.id === id);
      if (line) return line;
      if (Date.now() > deadline)
        throw new Error(`no access line for ${id} in:\n${service.logs.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  it('writes one JSON access line per request with the id it was sent, method, url, status and duration', async () => {
    const id = 'ops-test.request_1';
    const res = await fetch(`${service.url}/cities/ops-city/latest?limit=5`, {
      headers: { 'X-Request-Id': id },
    });
    // A city without data: the route answers 404 in the API's error shape.
    expect(res.status).toBe(404);
    expect(res.headers.get('x-request-id')).toBe(id);

    const line = await waitForAccessLine(id);
    expect(line.req).toMatchObject({ method: 'GET', url: '/cities/ops-city/latest?limit=5' });
    expect(line.res).toEqual({ statusCode: 404 });
    expect(typeof line.responseTime).toBe('number');
    expect(line.level).toBe(30);
    expect(accessLines().filter((l) => l.req?.id === id)).toHaveLength(1);
  });

  it('generates a request id when none or an unsafe one is sent', async () => {
    for (const sent of [undefined, 'x'.repeat(129), 'a b', 'id"}\n{"forged":true']) {
      const res = await fetch(`${service.url}/health/live`, {
        headers: sent === undefined ? {} : { 'X-Request-Id': sent.replace(/\n/g, '') },
      });
      expect(res.status).toBe(200);
      const id = res.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      await waitForAccessLine(id);
    }
  });

  it('logs requests refused before any route too (415), with their request id', async () => {
    const id = 'ops-not-json';
    const res = await fetch(`${service.url}/measurements`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', 'X-Request-Id': id },
      body: 'not json',
    });
    expect(res.status).toBe(415);
    expect(res.headers.get('x-request-id')).toBe(id);
    const line = await waitForAccessLine(id);
    expect(line.req).toMatchObject({ method: 'POST', url: '/measurements' });
    expect(line.res).toEqual({ statusCode: 415 });
  });

  it('never writes an API key, nor an Authorization header, to any log line', async () => {
    const id = 'ops-keyed-write';
    const res = await fetch(`${service.url}/measurements?api_key=${API_KEY}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-API-Key': API_KEY,
        Authorization: `Bearer ${API_KEY}`,
        'X-Request-Id': id,
      },
      body: JSON.stringify(measurement({ city_id: 'ops-city' })),
    });
    expect(res.status).toBe(202);
    const bad = await fetch(`${service.url}/measurements`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-API-Key': `${API_KEY}-wrong` },
      body: JSON.stringify(measurement({ city_id: 'ops-city' })),
    });
    expect(bad.status).toBe(401);
    const line = await waitForAccessLine(id);
    expect(line.req?.url).toBe('/measurements?api_key=%5BRedacted%5D');
    expect(service.logs.filter((l) => l.includes(API_KEY))).toEqual([]);
  });

  it('counts requests and observes their latency by route pattern, method and status in /metrics', async () => {
    for (const city of ['metrics-a', 'metrics-b', 'metrics-c'])
      expect((await fetch(`${service.url}/cities/${city}/latest`)).status).toBe(404);
    expect((await fetch(`${service.url}/no/such/route/${Date.now()}`)).status).toBe(404);

    const text = await (await fetch(`${service.url}/metrics`)).text();
    const count =
      /^aq_http_requests_total\{route="\/cities\/:cityId\/latest",method="GET",status="404"\} (\d+)$/m.exec(
        text,
      );
    expect(Number(count?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(
      /^aq_http_request_duration_seconds_count\{route="\/cities\/:cityId\/latest",method="GET",status="404"\} \d+$/m,
    );
    expect(text).toMatch(
      /^aq_http_request_duration_seconds_bucket\{le="0\.1",route="\/cities\/:cityId\/latest",method="GET",status="404"\} \d+$/m,
    );
    expect(text).toMatch(
      /^aq_http_requests_total\{route="unmatched",method="GET",status="404"\} \d+$/m,
    );
    // Bounded label values: never a raw URL.
    expect(text).not.toMatch(/route="[^"]*(metrics-a|no\/such)/);
  });
});
