import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { readWholeStream, waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';
import { injectWireFaults } from './support/wire-faults';

const KEY = 'dlq-operator-key';

describe('the dead-letter queue API (real emulators)', () => {
  let t: TestApp;
  const get = (path: string) => t.http.get(path).set('x-api-key', KEY);
  const post = (path: string) => t.http.post(path).set('x-api-key', KEY);

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1', API_KEYS: KEY }));
    await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: [
          { PartitionKey: 'dlq-city', Data: Buffer.from('not json at all') },
          {
            PartitionKey: 'dlq-city',
            Data: Buffer.from(JSON.stringify(measurement({ city_id: 'dlq-city', pm25_value: -5 }))),
          },
        ],
      }),
    );
    await waitUntilConsumed(t);
  });
  afterAll(() => t?.close());

  it('requires the API key on every route', async () => {
    for (const [method, path] of [
      ['get', '/dlq'],
      ['get', '/dlq/0123456789abcdef01234567'],
      ['post', '/dlq/0123456789abcdef01234567/redrive'],
      ['delete', '/dlq/0123456789abcdef01234567'],
    ] as const) {
      const none = await t.http[method](path);
      expect({ path, method, status: none.status }).toEqual({ path, method, status: 401 });
      const wrong = await t.http[method](path).set('x-api-key', 'nope');
      expect({ path, method, status: wrong.status }).toEqual({ path, method, status: 401 });
    }
  });

  it('lists entries newest first, filters by reason and pages with a cursor', async () => {
    const all = await get('/dlq').expect(200);
    expect(all.body.items.map((e: { reason: string }) => e.reason).sort()).toEqual([
      'parse_error',
      'validation_error',
    ]);
    expect(all.body.next_cursor).toBeNull();
    const times = all.body.items.map((e: { failed_at: string }) => e.failed_at);
    expect([...times].sort().reverse()).toEqual(times);

    const filtered = await get('/dlq?reason=validation_error').expect(200);
    expect(filtered.body.items).toHaveLength(1);
    expect(filtered.body.items[0]).toMatchObject({
      reason: 'validation_error',
      partition_key: 'dlq-city',
      attempts: 1,
      status: 'pending',
    });
    expect(filtered.body.items[0]).not.toHaveProperty('kind');

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { id: string }[]; next_cursor: string | null } } = await get(
        `/dlq?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
      ).expect(200);
      expect(page.body.items.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.items.map((e) => e.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen.sort()).toEqual(all.body.items.map((e: { id: string }) => e.id).sort());

    // A cursor is signed for its query: not valid with another filter, nor once changed.
    const first = (await get('/dlq?limit=1').expect(200)).body.next_cursor as string;
    const [payload, tag] = first.split('.');
    for (const bad of [
      `/dlq?reason=validation_error&cursor=${first}`,
      `/dlq?cursor=${payload.slice(1)}.${tag}`,
    ]) {
      const res = await get(bad);
      expect({ bad, status: res.status, code: res.body.code }).toEqual({
        bad,
        status: 400,
        code: 'validation_failed',
      });
    }

    for (const bad of [
      '/dlq?limit=0',
      '/dlq?limit=101',
      '/dlq?reason=other',
      '/dlq?cursor=bm90LWEta2V5',
      '/dlq?cursor=%24%24',
    ]) {
      const res = await get(bad);
      expect({ bad, status: res.status }).toEqual({ bad, status: 400 });
    }
  });

  it('gets one entry with its payload, 404 for an unknown id, 400 for a malformed one', async () => {
    const [entry] = (await get('/dlq?reason=parse_error').expect(200)).body.items;
    const one = await get(`/dlq/${entry.id}`).expect(200);
    expect(one.body).toMatchObject({
      id: entry.id,
      payload: 'not json at all',
      payload_encoding: 'utf8',
      stream: t.config.stream.name,
    });
    await get('/dlq/0123456789abcdef01234567').expect(404);
    await get('/dlq/not-an-id').expect(400);
  });

  it('redrives the payload as received; when it fails again the entry is pending with attempts + 1', async () => {
    const [entry] = (await get('/dlq?reason=validation_error').expect(200)).body.items;
    const res = await post(`/dlq/${entry.id}/redrive`).expect(202);
    expect(res.body).toEqual({ id: entry.id, status: 'redriven' });
    const again = await eventually(async () => {
      const r = await get(`/dlq/${entry.id}`);
      return r.body.attempts === 2 ? r.body : undefined;
    }, 'the entry failing again');
    expect(again).toMatchObject({
      status: 'pending',
      reason: 'validation_error',
      payload: entry.payload,
    });
    expect(again.sequence_number).not.toBe(entry.sequence_number);
    expect((await get('/dlq').expect(200)).body.items).toHaveLength(2);
  });

  it('rejects an invalid corrected payload with 400 and sends nothing; a valid one is stored', async () => {
    const [entry] = (await get('/dlq?reason=validation_error').expect(200)).body.items;
    const before = (await readWholeStream(t.kinesis, t.config.stream.name)).length;
    const invalid = await post(`/dlq/${entry.id}/redrive`).send({
      payload: { ...JSON.parse(entry.payload), pm25_value: 5000 },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.message).toEqual([expect.stringMatching(/^payload\.pm25_value/)]);
    expect(invalid.body.code).toBe('validation_failed');
    await post(`/dlq/${entry.id}/redrive`).send({ extra: 1 }).expect(400);
    expect(await readWholeStream(t.kinesis, t.config.stream.name)).toHaveLength(before);

    const { ingestion_timestamp: _i, message_id: _m, ...fields } = JSON.parse(entry.payload);
    await post(`/dlq/${entry.id}/redrive`)
      .send({ payload: { ...fields, pm25_value: 5 } })
      .expect(202);
    const latest = await eventually(async () => {
      const r = await t.http.get('/cities/dlq-city/latest');
      return r.status === 200 ? r.body : undefined;
    }, 'the corrected record stored');
    expect(latest.items[0].pm25_value).toBe(5);
    await waitUntilConsumed(t);
    expect((await get(`/dlq/${entry.id}`).expect(200)).body).toMatchObject({
      status: 'redriven',
      attempts: 2,
    });
  });

  it('deletes an entry: 204, then 404', async () => {
    const [entry] = (await get('/dlq?reason=parse_error').expect(200)).body.items;
    await t.http.delete(`/dlq/${entry.id}`).set('x-api-key', KEY).expect(204);
    await get(`/dlq/${entry.id}`).expect(404);
    await t.http.delete(`/dlq/${entry.id}`).set('x-api-key', KEY).expect(404);
  });
});

describe('redrives that fail, and poison records with identical bytes (real emulators)', () => {
  let t: TestApp;
  const get = (path: string) => t.http.get(path).set('x-api-key', KEY);
  const post = (path: string) => t.http.post(path).set('x-api-key', KEY);
  const entries = async () =>
    (await get('/dlq?limit=100').expect(200)).body.items as {
      id: string;
      attempts: number;
      status: string;
      sequence_number: string;
    }[];

  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({ KINESIS_SHARD_COUNT: '1', API_KEYS: KEY, PRODUCER_DEADLINE_MS: '500' }),
    );
    // Two distinct poison records with the same bytes: two entries.
    await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: [1, 2].map(() => ({ PartitionKey: 'twin', Data: Buffer.from('same poison') })),
      }),
    );
    await waitUntilConsumed(t);
  });
  afterAll(() => t?.close());

  it('keeps an entry pending when Kinesis does not take the redriven record (503)', async () => {
    const [entry] = await entries();
    const stop = injectWireFaults(t.kinesis, ({ operation }) =>
      operation === 'PutRecords'
        ? { status: 503, type: 'ServiceUnavailable', message: 'injected' }
        : undefined,
    );
    try {
      await post(`/dlq/${entry.id}/redrive`).expect(503);
    } finally {
      stop();
    }
    expect((await get(`/dlq/${entry.id}`).expect(200)).body).toMatchObject({
      status: 'pending',
      attempts: 1,
    });
  });

  it('gives each of two identical poison records its own entry when both are redriven and fail again', async () => {
    const before = await entries();
    expect(before).toHaveLength(2);
    for (const e of before) await post(`/dlq/${e.id}/redrive`).expect(202);
    const after = await eventually(async () => {
      const now = await entries();
      return now.length === 2 && now.every((e) => e.attempts === 2) ? now : undefined;
    }, 'both entries failing again, once each');
    expect(after.every((e) => e.status === 'pending')).toBe(true);
    expect(new Set(after.map((e) => e.sequence_number)).size).toBe(2);
    await waitUntilConsumed(t);
    expect(await entries()).toHaveLength(2);
  });

  it('leaves an entry pending when its redriven record fails again before the redrive is marked', async () => {
    const [entry] = await entries();
    // Hold the "redriven" mark until the consumer has failed the record again.
    t.db.middlewareStack.add(
      (next, context) => async (args) => {
        const values = (args.input as { ExpressionAttributeValues?: Record<string, unknown> })
          .ExpressionAttributeValues;
        // The document client's commands reach the stack as the low-level UpdateItem.
        if (context.commandName === 'UpdateItemCommand' && values?.[':redriven']) {
          await eventually(async () => {
            const { Item } = await t.db.send(
              new GetCommand({
                TableName: t.config.tables.dlq,
                Key: { id: entry.id },
                ConsistentRead: true,
              }),
            );
            return Number(Item?.attempts) > entry.attempts ? true : undefined;
          }, 'the redriven record failing again');
        }
        return next(args);
      },
      { step: 'initialize', name: 'holdRedriveMark' },
    );
    try {
      await post(`/dlq/${entry.id}/redrive`).expect(202);
    } finally {
      t.db.middlewareStack.remove('holdRedriveMark');
    }
    expect((await get(`/dlq/${entry.id}`).expect(200)).body).toMatchObject({
      status: 'pending',
      attempts: entry.attempts + 1,
    });
  });
});
