import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';
import { checkpoints, readWholeStream, waitUntilConsumed } from './support/stream';
import { injectWireFaults } from './support/wire-faults';

/**
 * Faults injected at the HTTP handler of the app's own clients (see support/wire-faults): the
 * emulators never throttle, so this is the only way to reach the retry paths against the real
 * services.
 */
describe('failures inside the pipeline end in a retry, never in loss', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1', PRODUCER_DEADLINE_MS: '1500' }));
  });
  afterAll(() => t?.close());

  it('retries only the failed entries of a PutRecords partial failure, then answers 202', async () => {
    let injected = 0;
    const calls: number[] = [];
    type Entry = { SequenceNumber?: string; ErrorCode?: string; ErrorMessage?: string };
    const stop = injectWireFaults(t.kinesis, ({ operation, input }) => {
      if (operation !== 'PutRecords') return undefined;
      const records = input.Records as unknown[];
      calls.push(records.length);
      if (injected >= 2) return undefined;
      injected += 1;
      // Kinesis rejects the even entries: they are not written, the others are.
      const kept = records.filter((_, i) => i % 2 === 1);
      return {
        forward: { ...input, Records: kept },
        rewrite: (output: { Records: Entry[] }) => {
          const accepted = [...output.Records];
          return {
            FailedRecordCount: records.length - kept.length,
            Records: records.map((_, i) =>
              i % 2 === 1
                ? accepted.shift()!
                : { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'injected' },
            ),
          };
        },
      };
    });
    try {
      const body = [1, 2, 3].map((v) => measurement({ city_id: 'partial', pm25_value: v }));
      await t.http.post('/measurements').send(body).expect(202);
      expect(injected).toBe(2);
      expect(calls).toEqual([3, 2, 1]);
      await waitUntilConsumed(t);
      const onStream = (await readWholeStream(t.kinesis, t.config.stream.name)).filter((d) =>
        d.includes('"partial"'),
      );
      expect(onStream).toHaveLength(3);
      const latest = await t.http.get('/cities/partial/latest').expect(200);
      expect(latest.body.items.map((m: { pm25_value: number }) => m.pm25_value).sort()).toEqual([
        1, 2, 3,
      ]);
    } finally {
      stop();
    }
  });

  it('answers 503 with Retry-After when Kinesis stays unavailable past the deadline; the same body resent is accepted', async () => {
    const stop = injectWireFaults(t.kinesis, ({ operation }) =>
      operation === 'PutRecords'
        ? { status: 503, type: 'ServiceUnavailable', message: 'injected outage' }
        : undefined,
    );
    const body = measurement({ city_id: 'outage' });
    try {
      const res = await t.http.post('/measurements').send(body).expect(503);
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      expect(res.body).toEqual({
        statusCode: 503,
        error: 'Service Unavailable',
        message: expect.any(String),
        code: 'stream_unavailable',
      });
      expect(JSON.stringify(res.body)).not.toMatch(/injected|ServiceUnavailable/);
    } finally {
      stop();
    }
    await t.http.post('/measurements').send(body).expect(202);
    await eventually(
      async () => ((await t.http.get('/cities/outage/latest')).status === 200 ? true : undefined),
      'outage record',
    );
  });

  it('checkpoints nothing past a record whose DynamoDB write fails, and stores it once DynamoDB recovers', async () => {
    await waitUntilConsumed(t);
    const before = await checkpoints(t.db, t.config);
    let failures = 0;
    let failing = true;
    // Every try of a batch call on the realtime table fails, through the SDK or sent directly.
    const stop = injectWireFaults(t.dynamoDb, ({ input }) => {
      if (!failing || !input.RequestItems?.[t.config.tables.realtime]) return undefined;
      failures += 1;
      return { status: 500, type: 'InternalServerError', message: 'injected' };
    });
    try {
      await t.http
        .post('/measurements')
        .send(measurement({ city_id: 'recover' }))
        .expect(202);
      await eventually(async () => (failures >= 3 ? true : undefined), 'three failed writes');
      expect(await checkpoints(t.db, t.config)).toEqual(before);
      await t.http.get('/cities/recover/latest').expect(404);
      failing = false;
      await eventually(
        async () =>
          (await t.http.get('/cities/recover/latest')).status === 200 ? true : undefined,
        'the record after recovery',
      );
      await waitUntilConsumed(t);
      expect(await checkpoints(t.db, t.config)).not.toEqual(before);
    } finally {
      stop();
    }
  });
});
