import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { readWholeStream, waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';

const KEY = 'reader-and-writer';

describe('access control and the HTTP edge', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({
        CONSUMER_ENABLED: 'false',
        API_KEYS: KEY,
        READ_API_KEYS_REQUIRED: 'true',
        RATE_LIMIT_PER_MINUTE: '0',
      }),
    );
  });
  afterAll(() => t?.close());

  it('needs the key on reads with READ_API_KEYS_REQUIRED, and leaves health, metrics and docs open', async () => {
    const withKey: Record<string, number> = {
      '/cities': 200,
      '/cities/x/latest': 404,
      '/cities/x/aggregates': 200,
    };
    for (const [path, status] of Object.entries(withKey)) {
      const res = await t.http.get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
      const ok = await t.http.get(path).set('x-api-key', KEY);
      expect({ path, status: ok.status }).toEqual({ path, status });
    }
    for (const path of ['/health/live', '/metrics', '/docs-json'])
      await t.http.get(path).expect(200);
  });

  it('sends helmet headers and documents the key in OpenAPI', async () => {
    const res = await t.http.get('/health/live').expect(200);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBeDefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
    const doc = await t.http.get('/docs-json').expect(200);
    expect(doc.body.components.securitySchemes['api-key']).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'x-api-key',
    });
  });
});

describe('rate limits on writes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({ CONSUMER_ENABLED: 'false', API_KEYS: 'k1,k2', RATE_LIMIT_PER_MINUTE: '3' }),
    );
  });
  afterAll(() => t?.close());

  it('answers 429 with Retry-After past the limit, per key', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await t.http
        .post('/measurements')
        .set('x-api-key', 'k1')
        .send(measurement({ city_id: 'rl' }))
        .expect(202);
      expect(res.headers['x-ratelimit-limit']).toBe('3');
      expect(res.headers['x-ratelimit-remaining']).toBe(String(2 - i));
      expect(res.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
      expect(res.headers['ratelimit']).toMatch(new RegExp(`^"default";r=${2 - i};t=\\d+$`));
    }
    const limited = await t.http
      .post('/measurements')
      .set('x-api-key', 'k1')
      .send(measurement({ city_id: 'rl' }));
    expect(limited.status).toBe(429);
    expect(
      Number(limited.headers['retry-after'] ?? limited.headers['retry-after-writes']),
    ).toBeGreaterThan(0);
    expect(limited.body).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: expect.any(String),
      code: 'rate_limited',
    });
    expect(limited.headers['x-ratelimit-limit']).toBe('3');
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');
    expect(Number(limited.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
    expect(limited.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
    expect(limited.headers['ratelimit']).toMatch(/^"default";r=0;t=\d+$/);
    await t.http
      .post('/measurements')
      .set('x-api-key', 'k2')
      .send(measurement({ city_id: 'rl' }))
      .expect(202);
    expect(await readWholeStream(t.kinesis, t.config.stream.name)).toHaveLength(4);
  });
});

describe('rate limits on anonymous writes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(isolatedEnv({ CONSUMER_ENABLED: 'false', RATE_LIMIT_PER_MINUTE: '2' }));
  });
  afterAll(() => t?.close());

  it('counts per client address; a made-up X-API-Key does not buy a fresh budget', async () => {
    for (const key of ['made-up-1', 'made-up-2']) {
      await t.http
        .post('/measurements')
        .set('x-api-key', key)
        .send(measurement({ city_id: 'anon' }))
        .expect(202);
    }
    const limited = await t.http
      .post('/measurements')
      .set('x-api-key', 'made-up-3')
      .send(measurement({ city_id: 'anon' }));
    expect(limited.status).toBe(429);
  });
});

describe('fuzzing the HTTP edge: never a 5xx, never a record for a rejected request', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({
        CONSUMER_ENABLED: 'false',
        KINESIS_SHARD_COUNT: '1',
        RATE_LIMIT_PER_MINUTE: '0',
      }),
    );
  });
  afterAll(() => t?.close());

  it('POST /measurements with arbitrary JSON and with broken measurements', async () => {
    let accepted = 0;
    const valid = measurement({ city_id: 'fuzz' });
    const broken = fc
      .record({
        key: fc.constantFrom(...Object.keys(valid), '__proto__', 'constructor', 'extra'),
        value: fc.jsonValue(),
      })
      .map(({ key, value }) =>
        JSON.parse(
          `{${JSON.stringify(key)}:${JSON.stringify(value)},${JSON.stringify({ ...valid, [key]: undefined }).slice(1)}`,
        ),
      );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.jsonValue(), broken, fc.array(broken, { maxLength: 3 })),
        async (body) => {
          const res = await t.http
            .post('/measurements')
            .set('content-type', 'application/json')
            .send(JSON.stringify(body));
          expect(res.status).toBeLessThan(500);
          expect([202, 400]).toContain(res.status);
          if (res.status === 202) accepted += res.body.accepted;
          expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(js|ts):\d+|Exception|node_modules/);
        },
      ),
      { numRuns: 150 },
    );
    expect(await readWholeStream(t.kinesis, t.config.stream.name)).toHaveLength(accepted);
  });

  it('query and path parameters of the read routes', async () => {
    const text = fc.string({ maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(text, text, text, text, text, async (city, limit, window, from, to) => {
        const q = (k: string, v: string) => `${k}=${encodeURIComponent(v)}`;
        for (const path of [
          `/cities/${encodeURIComponent(city)}/latest?${q('limit', limit)}`,
          `/cities/${encodeURIComponent(city)}/aggregates?${q('window', window)}&${q('from', from)}&${q('to', to)}&${q('limit', limit)}`,
          `/dlq?${q('limit', limit)}&${q('cursor', from)}&${q('reason', window)}`,
          `/dlq/${encodeURIComponent(city)}`,
        ]) {
          const res = await t.http.get(path);
          expect({ path, status: res.status < 500 }).toEqual({ path, status: true });
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('hostile records on the stream', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1' }));
  });
  afterAll(() => t?.close());

  it('end in the DLQ with the right reason; nothing crashes, stalls or pollutes a prototype', async () => {
    const good = (v: number) => ({
      PartitionKey: 'hostile',
      Data: Buffer.from(JSON.stringify(measurement({ city_id: 'hostile', pm25_value: v }))),
    });
    const bad = (name: string, data: Buffer) => ({
      name,
      record: { PartitionKey: `bad-${name}`, Data: data },
    });
    const base = JSON.stringify(measurement({ city_id: 'hostile' })).slice(1);
    const cases = [
      bad(
        'huge',
        Buffer.from(
          JSON.stringify(measurement({ city_id: 'hostile', city_name: 'x'.repeat(900_000) })),
        ),
      ),
      bad(
        'deep',
        Buffer.from(`{"station_id":${'['.repeat(100_000)}${']'.repeat(100_000)},${base}`),
      ),
      bad('proto', Buffer.from(`{"__proto__":{"polluted":"yes"},${base}`)),
      bad('constructor', Buffer.from(`{"constructor":{"prototype":{"polluted":"yes"}},${base}`)),
      bad('nan', Buffer.from(`{"pm25_value":NaN,${base}`)),
      bad('infinity', Buffer.from(`{"pm25_value":Infinity,${base}`)),
      bad('utf8', Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])),
      bad('binary', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 97 + 13) % 256))),
    ];
    const expected: Record<string, string> = {
      huge: 'validation_error',
      deep: 'validation_error',
      proto: 'validation_error',
      constructor: 'validation_error',
      nan: 'parse_error',
      infinity: 'parse_error',
      utf8: 'parse_error',
      binary: 'parse_error',
    };
    for (const c of cases) {
      await t.kinesis.send(
        new PutRecordsCommand({
          StreamName: t.config.stream.name,
          Records: [good(1), c.record, good(2)],
        }),
      );
    }
    const entries = await eventually(async () => {
      const { Items = [] } = await t.db.send(new ScanCommand({ TableName: t.config.tables.dlq }));
      const letters = Items.filter((i) => i.kind === 'entry');
      return letters.length === cases.length ? letters : undefined;
    }, 'a DLQ entry per hostile record');
    const reasons = Object.fromEntries(
      entries.map((e) => [String(e.partition_key).slice(4), e.reason]),
    );
    expect(reasons).toEqual(expected);
    const huge = entries.find((e) => e.partition_key === 'bad-huge')!;
    expect(huge.payload_bytes).toBeGreaterThan(900_000);
    expect(huge.payload_truncated).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await waitUntilConsumed(t);
    const latest = await t.http.get('/cities/hostile/latest?limit=100').expect(200);
    expect(latest.body.items).toHaveLength(2 * cases.length);
    const ready = await t.http.get('/health/ready').expect(200);
    expect(
      Object.values(ready.body.details.consumer.shards).map((s) => (s as { state: string }).state),
    ).toEqual(['polling']);
  });
});
