import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { putOnStream, Sent } from './support/oracle';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';

const BASE = Date.UTC(2026, 0, 7, 9, 0, 0);
// Later than every measurement of the other tests (one shard, one watermark), so none is late.
const AGG_BASE = Date.UTC(2026, 0, 7, 12, 0, 0);

interface Page<T> {
  status: number;
  body: { items: T[]; next_cursor: string | null; code?: string };
}

type Item = { message_id: string; timestamp: string };
type Window = { window_start: string };

function tamper(cursor: string): string {
  const [payload, tag] = cursor.split('.');
  const json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  json.k = Object.fromEntries(
    Object.entries(json.k as Record<string, unknown>).map(([k, v]) => [
      k,
      typeof v === 'string' ? `${v.slice(0, -1)}${v.endsWith('0') ? '1' : '0'}` : v,
    ]),
  );
  const forged = Buffer.from(JSON.stringify(json)).toString('base64url');
  expect(forged).not.toBe(payload);
  return `${forged}.${tag}`;
}

describe('paging latest measurements and aggregates (real emulators)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({
        KINESIS_SHARD_COUNT: '1',
        AGGREGATION_WINDOWS: '1m',
        AGGREGATION_FLUSH_MS: '200',
      }),
    );
  });
  afterAll(() => t.close());

  async function pages<T>(path: string, limit: number): Promise<Page<T>[]> {
    const got: Page<T>[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const url: string = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = (await t.http.get(url).expect(200)) as unknown as Page<T>;
      got.push(r);
      cursor = r.body.next_cursor;
      expect(got.length).toBeLessThan(20);
    } while (cursor);
    return got;
  }

  it('pages latest 10 + 10 + 5, newest first, no duplicates or gaps, and refuses bad cursors', async () => {
    const sent = Array.from({ length: 25 }, (_, i) => ({
      city_id: 'pager',
      city_name: 'Pager',
      timestamp: new Date(BASE + i * 7_000).toISOString(),
      pm25_value: i,
      pm10_value: 10,
      temperature_c: 20,
    }));
    const posted = await t.http.post('/measurements').send(sent).expect(202);
    await t.http
      .post('/measurements')
      .send({ ...sent[0], city_id: 'other', city_name: 'Other' })
      .expect(202);
    await eventually(async () => {
      const r = await t.http.get('/cities/pager/latest?limit=100');
      const o = await t.http.get('/cities/other/latest');
      return r.body.items?.length === 25 && o.status === 200 ? true : undefined;
    }, 'all 25 stored');

    const got = await pages<Item>('/cities/pager/latest', 10);
    expect(got.map((p) => p.body.items.length)).toEqual([10, 10, 5]);
    expect(got.at(-1)!.body.next_cursor).toBeNull();
    const ids = got.flatMap((p) => p.body.items.map((m) => m.message_id));
    expect(ids).toEqual([...(posted.body.message_ids as string[])].reverse());
    const times = got.flatMap((p) => p.body.items.map((m) => m.timestamp));
    expect(times).toEqual(sent.map((m) => m.timestamp).reverse());

    // Exactly one page: no cursor to an empty page.
    const whole = await t.http.get('/cities/pager/latest?limit=25').expect(200);
    expect(whole.body.next_cursor).toBeNull();
    expect(Object.keys(whole.body)).toEqual(['city_id', 'items', 'next_cursor']);

    const cursor = got[0].body.next_cursor!;
    for (const bad of [
      tamper(cursor),
      `${cursor.split('.')[0]}.${'A'.repeat(43)}`,
      'not-a-cursor',
      Buffer.from('{"city_id":"pager","sk":"x"}').toString('base64url'),
    ]) {
      const r = await t.http.get(`/cities/pager/latest?cursor=${encodeURIComponent(bad)}`);
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ statusCode: 400, code: 'validation_failed' });
      expect(JSON.stringify(r.body.message)).toMatch(/start again/);
    }
    const foreign = await t.http
      .get(`/cities/other/latest?cursor=${encodeURIComponent(cursor)}`)
      .expect(400);
    expect(foreign.body.code).toBe('validation_failed');
  });

  it('points next_cursor after the last item returned when expired items shorten a page', async () => {
    const now = Math.floor(Date.now() / 1000);
    const live: string[] = [];
    for (let i = 0; i < 50; i += 1) {
      const timestamp = new Date(BASE + i * 1000).toISOString();
      const messageId = i.toString(16).padStart(16, '0');
      const expired = i % 2 === 1;
      if (!expired) live.push(messageId);
      await t.db.send(
        new PutCommand({
          TableName: t.config.tables.realtime,
          Item: {
            city_id: 'ttl-pager',
            sk: `${timestamp}#${messageId}`,
            city_name: 'TTL Pager',
            timestamp,
            pm25_value: 1,
            pm10_value: 1,
            temperature_c: 1,
            aqi_value: 4,
            aqi_category: 'Good',
            ingestion_timestamp: timestamp,
            message_id: messageId,
            ttl: expired ? now - 60 : now + 3600,
          },
        }),
      );
    }
    const got = await pages<Item>('/cities/ttl-pager/latest', 10);
    expect(got.map((p) => p.body.items.length)).toEqual([10, 10, 5]);
    expect(got.flatMap((p) => p.body.items.map((m) => m.message_id))).toEqual(live.reverse());
  });

  it('gives the newest windows ascending and pages toward older ones, each window once', async () => {
    const sent: Sent[] = Array.from({ length: 30 }, (_, i) => ({
      city_id: 'agg-pager',
      city_name: 'Agg Pager',
      timestamp: new Date(AGG_BASE + i * 60_000 + 5_000).toISOString(),
      pm25_value: i + 0.5,
      pm10_value: 10,
      temperature_c: 20,
      station_id: 'st-1',
    }));
    await putOnStream(t, sent);
    const from = new Date(AGG_BASE).toISOString();
    const to = new Date(AGG_BASE + 3_600_000).toISOString();
    const path = `/cities/agg-pager/aggregates?window=1m&from=${from}&to=${to}`;
    await eventually(async () => {
      const r = await t.http.get(`${path}&limit=1000`);
      return r.body.items?.length === 30 ? true : undefined;
    }, 'all 30 windows written');

    const starts = sent.map((_, i) => new Date(AGG_BASE + i * 60_000).toISOString());
    const got = await pages<Window>(path, 10);
    expect(got.map((p) => p.body.items.length)).toEqual([10, 10, 10]);
    expect(got[0].body.items.map((a) => a.window_start)).toEqual(starts.slice(20));
    expect(got[1].body.items.map((a) => a.window_start)).toEqual(starts.slice(10, 20));
    expect(got[2].body.items.map((a) => a.window_start)).toEqual(starts.slice(0, 10));
    expect(got[2].body.next_cursor).toBeNull();
    const all = got.flatMap((p) => p.body.items.map((a) => a.window_start)).sort();
    expect(all).toEqual(starts);

    const whole = await t.http.get(`${path}&limit=1000`).expect(200);
    expect(Object.keys(whole.body)).toEqual(['city_id', 'window', 'items', 'next_cursor']);
    expect(whole.body.next_cursor).toBeNull();
    const none = await t.http
      .get(
        `/cities/agg-pager/aggregates?window=1m&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z`,
      )
      .expect(200);
    expect(none.body).toEqual({ city_id: 'agg-pager', window: '1m', items: [], next_cursor: null });

    const cursor = got[0].body.next_cursor!;
    for (const other of [
      `/cities/agg-pager/aggregates?window=1m&from=${from}&to=${new Date(AGG_BASE + 1_800_000).toISOString()}`,
      `/cities/pager/aggregates?window=1m&from=${from}&to=${to}`,
      `/cities/agg-pager/latest`,
    ]) {
      const r = await t.http.get(
        `${other}&cursor=${encodeURIComponent(cursor)}`.replace('latest&', 'latest?'),
      );
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('validation_failed');
    }
    const tampered = await t.http.get(`${path}&cursor=${encodeURIComponent(tamper(cursor))}`);
    expect(tampered.status).toBe(400);
    expect(tampered.body.code).toBe('validation_failed');
  });

  it('pages the cities in city_id order, and refuses a cursor of another route', async () => {
    const cities = ['pc-a', 'pc-B', 'pc-c', 'pc-d', 'pc_e'];
    await t.http
      .post('/measurements')
      .send(
        cities.map((city, i) => ({
          city_id: city,
          city_name: `City ${city}`,
          timestamp: new Date(BASE + i * 1000).toISOString(),
          pm25_value: i,
          pm10_value: 10,
          temperature_c: 20,
        })),
      )
      .expect(202);
    type City = { city_id: string; latest: { city_id: string } };
    const ours = (items: City[]) => items.filter((c) => c.city_id.startsWith('pc'));
    await eventually(async () => {
      const r = await t.http.get('/cities?limit=1000');
      return ours(r.body.items as City[]).length === cities.length ? true : undefined;
    }, 'every city listed');

    const got = await pages<City>('/cities', 2);
    const listed = got.flatMap((p) => p.body.items);
    // Byte order, as the table sorts: upper case before lower case, '-' before '_'.
    const all = listed.map((c) => c.city_id);
    expect(all).toEqual([...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(all).size).toBe(all.length);
    expect(ours(listed).map((c) => c.city_id)).toEqual(['pc-B', 'pc-a', 'pc-c', 'pc-d', 'pc_e']);
    for (const city of listed) expect(city.latest.city_id).toBe(city.city_id);
    expect(got.at(-1)!.body.next_cursor).toBeNull();

    const cursor = got[0].body.next_cursor!;
    for (const path of [
      `/cities?cursor=${encodeURIComponent(tamper(cursor))}`,
      `/cities/pager/latest?cursor=${encodeURIComponent(cursor)}`,
      `/dlq?cursor=${encodeURIComponent(cursor)}`,
    ]) {
      const r = await t.http.get(path);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('validation_failed');
    }
    for (const limit of ['0', '1001', 'x']) {
      const r = await t.http.get(`/cities?limit=${limit}`);
      expect(r.status).toBe(400);
    }
  });
});
