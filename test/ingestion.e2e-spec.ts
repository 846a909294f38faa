import { ErrorCode } from '../src/common/app-error';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';
import { readWholeStream, waitUntilConsumed } from './support/stream';

describe('POST /measurements → GET /cities/:cityId/latest (real emulators)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(isolatedEnv());
  });
  afterAll(() => t?.close());

  it('is ready: stream ACTIVE, tables reachable, consumer running', async () => {
    const res = await eventually(async () => {
      const r = await t.http.get('/health/ready');
      return r.status === 200 && r.body.details.consumer.leases_held === 2 ? r : undefined;
    }, 'readiness');
    expect(res.body.status).toBe('ok');
    expect(res.body.details.stream.streamStatus).toBe('ACTIVE');
    expect(Object.keys(res.body.details.consumer.shards)).toHaveLength(2);
    await t.http.get('/health/live').expect(200);
  });

  it('serves a POSTed measurement from the speed layer and lists its city', async () => {
    const body = measurement({
      city_id: 'lisbon',
      city_name: 'Lisbon',
      timestamp: '2026-01-02T10:00:00+01:00',
    });
    const post = await t.http.post('/measurements').send(body).expect(202);
    expect(post.body).toEqual({
      accepted: 1,
      message_ids: [expect.stringMatching(/^[0-9a-f]{16}$/)],
    });

    const latest = await eventually(async () => {
      const r = await t.http.get('/cities/lisbon/latest');
      return r.status === 200 ? r.body : undefined;
    }, 'the measurement in GET latest');
    expect(latest.city_id).toBe('lisbon');
    expect(latest.items).toHaveLength(1);
    expect(latest.items[0]).toMatchObject({
      city_id: 'lisbon',
      timestamp: '2026-01-02T09:00:00.000Z',
      pm25_value: 12,
      aqi_value: 63,
      aqi_category: 'Moderate',
      message_id: post.body.message_ids[0],
    });
    expect(latest.items[0]).not.toHaveProperty('ttl');
    expect(latest.items[0]).not.toHaveProperty('sk');

    const lisbon = await eventually(async () => {
      const r = await t.http.get('/cities').expect(200);
      return r.body.items.find((c: { city_id: string }) => c.city_id === 'lisbon');
    }, 'lisbon in GET /cities');
    expect(lisbon).toEqual({ city_id: 'lisbon', city_name: 'Lisbon', latest: latest.items[0] });
  });

  it('returns the newest event time first and keeps the newest as the city latest, whatever the arrival order', async () => {
    const at = (minute: number) => `2026-01-03T10:0${minute}:00Z`;
    await t.http
      .post('/measurements')
      .send(measurement({ city_id: 'oslo', timestamp: at(5), pm25_value: 5 }))
      .expect(202);
    // The newest is stored first, so the older ones below must lose the condition on the city item.
    await waitUntilConsumed(t);
    await t.http
      .post('/measurements')
      .send([
        measurement({ city_id: 'oslo', timestamp: at(1), pm25_value: 1 }),
        measurement({ city_id: 'oslo', timestamp: at(3), pm25_value: 3 }),
      ])
      .expect(202);
    const latest = await eventually(async () => {
      const r = await t.http.get('/cities/oslo/latest?limit=2');
      return r.status === 200 && r.body.items.length === 2 && r.body.items[1].pm25_value === 3
        ? r.body
        : undefined;
    }, 'three oslo measurements');
    expect(latest.items.map((m: { pm25_value: number }) => m.pm25_value)).toEqual([5, 3]);
    await waitUntilConsumed(t);
    const cities = await t.http.get('/cities').expect(200);
    const oslo = cities.body.items.find((c: { city_id: string }) => c.city_id === 'oslo');
    expect(oslo.latest.pm25_value).toBe(5);
  });

  it('stores a measurement POSTed twice as one item', async () => {
    const body = measurement({ city_id: 'twice' });
    const first = await t.http.post('/measurements').send(body).expect(202);
    const second = await t.http.post('/measurements').send([body, body]).expect(202);
    expect(second.body.message_ids).toEqual([first.body.message_ids[0], first.body.message_ids[0]]);
    await t.http
      .post('/measurements')
      .send(measurement({ city_id: 'twice', timestamp: '2020-01-01T00:00:00Z' }))
      .expect(202);
    const latest = await eventually(async () => {
      const r = await t.http.get('/cities/twice/latest?limit=100');
      return r.status === 200 &&
        r.body.items.some((m: { timestamp: string }) => m.timestamp.startsWith('2020'))
        ? r.body
        : undefined;
    }, 'the later marker record');
    expect(
      latest.items.filter(
        (m: { message_id: string }) => m.message_id === first.body.message_ids[0],
      ),
    ).toHaveLength(1);
    expect(latest.items).toHaveLength(2);
  });

  it('answers 404 for a city never seen and 400 for bad parameters', async () => {
    const missing = await t.http.get('/cities/nowhere/latest').expect(404);
    expect(missing.body).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: expect.any(String),
      code: 'not_found',
    });
    const noRoute = await t.http.get('/no/such/route').expect(404);
    expect(noRoute.body).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: expect.any(String),
      code: 'not_found',
    });
    for (const path of [
      '/cities/bad%20id/latest',
      '/cities/lisbon/latest?limit=0',
      '/cities/lisbon/latest?limit=101',
      '/cities/lisbon/latest?limit=abc',
      '/cities/lisbon/latest?other=1',
    ]) {
      const res = await t.http.get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body).toEqual({
        statusCode: 400,
        error: 'Bad Request',
        message: expect.anything(),
        code: 'validation_failed',
      });
    }
  });

  it('exposes Prometheus metrics for what it did', async () => {
    await waitUntilConsumed(t);
    const res = await t.http.get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const value = (line: RegExp) => Number(res.text.match(line)?.[1]);
    expect(value(/^aq_records_ingested_total (\d+)/m)).toBeGreaterThanOrEqual(7);
    expect(value(/^aq_records_consumed_total\{outcome="stored"\} (\d+)/m)).toBeGreaterThanOrEqual(
      7,
    );
    expect(value(/^aq_end_to_end_latency_seconds_count (\d+)/m)).toBeGreaterThanOrEqual(7);
    expect(res.text).toMatch(/^aq_end_to_end_latency_seconds_bucket\{le="0\.001"\}/m);
    expect(res.text).toMatch(/^aq_end_to_end_latency_seconds_bucket\{le="60"\}/m);
    expect(value(/^aq_leases_held (\d+)/m)).toBe(2);
    expect(res.text).toMatch(/^aq_shard_iterator_age_seconds\{shard="shardId-000000000000"\} 0/m);
    // Every commit flushes the latest items, then writes its transaction.
    expect(value(/^aq_commit_step_seconds_count\{step="latest"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^aq_commit_step_seconds_count\{step="transaction"\} (\d+)/m)).toBeGreaterThan(0);
    expect(res.text).toMatch(/^process_cpu_seconds_total/m);
  });

  it('serves the OpenAPI document and Swagger UI', async () => {
    const doc = await t.http.get('/docs-json').expect(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        '/measurements',
        '/cities',
        '/cities/{cityId}/latest',
        '/health/live',
        '/health/ready',
      ]),
    );
    expect(doc.body.components.schemas.MeasurementDto.properties.pm25_value).toMatchObject({
      minimum: 0,
      maximum: 1000,
    });
    // Error bodies: `code` is an enum of every ErrorCode; 429 and 503 document Retry-After.
    const errorSchema = doc.body.components.schemas.ErrorResponseDto;
    expect(errorSchema.required).toEqual(
      expect.arrayContaining(['statusCode', 'error', 'message', 'code']),
    );
    // `code` refers to the named ErrorCode schema (allOf [$ref]), which lists every code.
    const codeRef: string = errorSchema.properties.code.allOf[0].$ref;
    const codeEnum = doc.body.components.schemas[codeRef.split('/').pop() as string].enum;
    expect(codeEnum).toEqual(Object.values(ErrorCode));
    const post = doc.body.paths['/measurements'].post.responses;
    expect(Object.keys(post['429'].headers)).toEqual(
      expect.arrayContaining(['Retry-After', 'X-RateLimit-Limit', 'RateLimit']),
    );
    expect(Object.keys(post['503'].headers)).toContain('Retry-After');
    const ui = await t.http.get('/docs').redirects(1);
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
  });
});

describe('POST /measurements rejects bad input and sends nothing (consumer off)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ CONSUMER_ENABLED: 'false' }));
  });
  afterAll(() => t?.close());

  const cases: [string, unknown, RegExp][] = [
    ['a missing field', { ...measurement(), pm25_value: undefined }, /pm25_value is required/],
    ['a value out of range', measurement({ pm25_value: 1000.5 }), /pm25_value/],
    ['a string for a number', measurement({ temperature_c: '21' }), /temperature_c/],
    ['a timestamp without a zone', measurement({ timestamp: '2026-01-01T00:00:00' }), /timestamp/],
    [
      'a timestamp in the future',
      measurement({ timestamp: new Date(Date.now() + 3_600_000).toISOString() }),
      /timestamp/,
    ],
    ['a bad city id', measurement({ city_id: 'a b' }), /city_id/],
    ['an unknown field', measurement({ extra: 1 }), /extra is not an allowed field/],
    ['a bad AQI category', measurement({ aqi_category: 'Bad' }), /aqi_category/],
    ['a non-integer AQI', measurement({ aqi_value: 10.5 }), /aqi_value/],
    ['an empty batch', [], /1–500/],
    ['a batch of 501', Array.from({ length: 501 }, () => measurement()), /1–500/],
    ['a JSON string', 'hello', /^"request body is not valid JSON"$/],
    ['a JSON number', 42, /^"request body is not valid JSON"$/],
    ['a JSON null', null, /^"request body is not valid JSON"$/],
    [
      'a prototype key',
      JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(measurement()).slice(1)}`),
      /__proto__ is not an allowed field/,
    ],
    ['a constructor key', measurement({ constructor: 'x' }), /constructor is not an allowed field/],
    [
      'a nested value',
      measurement({ city_name: [[['Deep']]] }),
      /city_name must be a string or a number/,
    ],
    [
      'deeply nested JSON',
      measurement({ city_name: JSON.parse('['.repeat(3000) + ']'.repeat(3000)) }),
      /city_name/,
    ],
    ['a numeric string', measurement({ pm25_value: '5' }), /pm25_value must be a number/],
    ['a null AQI', measurement({ aqi_value: null }), /aqi_value must be an integer/],
  ];

  it.each(cases)('400 for %s', async (_name, body, message) => {
    const res = await t.http
      .post('/measurements')
      .set('content-type', 'application/json')
      .send(JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(res.body.statusCode).toBe(400);
    expect(res.body.error).toBe('Bad Request');
    // A body that is JSON but not an object or array is refused by the JSON parser itself.
    expect(res.body.code).toBe(
      message.source.includes('not valid JSON') ? 'malformed_json' : 'validation_failed',
    );
    expect(JSON.stringify(res.body.message)).toMatch(message);
  });

  it('400 with per-index messages for a batch, and none of it sent', async () => {
    const res = await t.http
      .post('/measurements')
      .send([
        measurement({ city_id: 'batch-ok' }),
        measurement({ pm10_value: -1 }),
        measurement(),
        measurement({ city_name: '' }),
      ])
      .expect(400);
    expect(res.body.message).toEqual([
      expect.stringMatching(/^\[1\]\.pm10_value/),
      expect.stringMatching(/^\[3\]\.city_name/),
    ]);
  });

  it('400 for malformed JSON and 413 for a body over 1 MB', async () => {
    const malformed = await t.http
      .post('/measurements')
      .set('content-type', 'application/json')
      .send('{"city_id":');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'request body is not valid JSON',
      code: 'malformed_json',
    });
    const big = JSON.stringify([{ ...measurement(), city_name: 'x'.repeat(1_100_000) }]);
    const tooLarge = await t.http
      .post('/measurements')
      .set('content-type', 'application/json')
      .send(big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body).toEqual({
      statusCode: 413,
      error: 'Payload Too Large',
      message: 'request body is larger than 1 MB',
      code: 'payload_too_large',
    });
    const text = await t.http.post('/measurements').set('content-type', 'text/plain').send('hello');
    expect(text.status).toBe(415);
    expect(text.body).toEqual({
      statusCode: 415,
      error: 'Unsupported Media Type',
      message: expect.any(String),
      code: 'unsupported_media_type',
    });
  });

  it('put nothing on the stream for any rejected request, and a valid one afterwards is there', async () => {
    await t.http
      .post('/measurements')
      .send(measurement({ city_id: 'control' }))
      .expect(202);
    const records = await readWholeStream(t.kinesis, t.config.stream.name);
    expect(records).toHaveLength(1);
    expect(JSON.parse(records[0])).toMatchObject({ city_id: 'control' });
  });
});

describe('API keys (API_KEYS set)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ CONSUMER_ENABLED: 'false', API_KEYS: 'key-one,key-two' }));
  });
  afterAll(() => t?.close());

  it('answers 401 without a key or with a wrong one, and 202 with any configured key', async () => {
    const body = measurement({ city_id: 'keyed' });
    const none = await t.http.post('/measurements').send(body);
    expect(none.status).toBe(401);
    expect(none.body).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: expect.any(String),
      code: 'unauthorized',
    });
    await t.http.post('/measurements').set('x-api-key', 'key-three').send(body).expect(401);
    await t.http.post('/measurements').set('x-api-key', 'key-two').send(body).expect(202);
    await t.http.post('/measurements').set('x-api-key', 'key-one').send(body).expect(202);
    expect(await readWholeStream(t.kinesis, t.config.stream.name)).toHaveLength(2);
  });
});
