import { OpenApiDocument, RecordedResponse, ResponseAudit } from './support/response-audit';
import { isolatedEnv, startApp, TestApp } from './support/test-app';

/** The audit that checks every e2e response must itself catch what it is there to catch. */
describe('response audit', () => {
  let t: TestApp;
  let document: Promise<OpenApiDocument>;
  const measurement = {
    city_id: 'audit',
    city_name: 'Audit',
    timestamp: '2026-01-01T00:00:00.000Z',
    pm25_value: 1,
    pm10_value: 2,
    temperature_c: 3,
    aqi_value: 4,
    aqi_category: 'Good',
    ingestion_timestamp: '2026-01-01T00:00:01.000Z',
    message_id: '0123456789abcdef',
  };

  beforeAll(async () => {
    t = await startApp(isolatedEnv());
    document = t.http.get('/docs-json').then((r) => r.body as OpenApiDocument);
  });
  afterAll(() => t.close());

  async function violations(response: Partial<RecordedResponse> & { json?: unknown }) {
    const audit = new ResponseAudit();
    audit.record(
      document,
      Promise.resolve({
        method: 'GET',
        path: '/cities/audit/latest',
        status: 200,
        contentType: 'application/json',
        body: Buffer.from(JSON.stringify(response.json)),
        ...response,
      }),
    );
    await audit.settle();
    return audit.violations;
  }

  const latest = (item: Record<string, unknown>) => ({
    city_id: 'audit',
    items: [item],
    next_cursor: null,
  });

  it('passes a documented response', async () => {
    expect(await violations({ json: latest(measurement) })).toEqual([]);
  });

  it('fails an undocumented field, a wrong type and a wrong field order', async () => {
    expect(await violations({ json: latest({ ...measurement, ttl: 1 }) })).toEqual([
      expect.stringContaining('(ttl)'),
    ]);
    expect(await violations({ json: latest({ ...measurement, aqi_value: 4.5 }) })).toEqual([
      expect.stringContaining('must be integer'),
    ]);
    const { city_id, ...rest } = measurement;
    expect(await violations({ json: latest({ ...rest, city_id }) })).toEqual([
      expect.stringContaining('x-property-order'),
    ]);
  });

  it('fails an undocumented status, route or content type', async () => {
    expect(await violations({ status: 418, json: {} })).toEqual([
      expect.stringContaining('status not documented'),
    ]);
    expect(await violations({ path: '/nowhere', json: {} })).toEqual([
      expect.stringContaining('route not documented'),
    ]);
    expect(await violations({ contentType: 'text/html', json: latest(measurement) })).toEqual([
      expect.stringContaining('content type text/html not documented'),
    ]);
  });

  it('sees a 304 to a conditional GET as documented (browsers send If-None-Match)', async () => {
    const first = await t.http.get('/health/live').expect(200);
    await t.http.get('/health/live').set('If-None-Match', first.headers.etag).expect(304);
    const audit = new ResponseAudit();
    audit.record(
      document,
      Promise.resolve({
        method: 'GET',
        path: '/dlq',
        status: 304,
        contentType: '',
        body: Buffer.alloc(0),
      }),
    );
    await audit.settle();
    expect(audit.violations).toEqual([]);
  });
});
