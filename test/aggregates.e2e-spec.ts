import { spawnService } from './support/service-process';
import { allFinal, compareWithOracle, dataset, putOnStream } from './support/oracle';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp } from './support/test-app';

const BASE = Date.UTC(2026, 0, 5, 10, 0, 0);
const AGGREGATION = {
  AGGREGATION_WINDOWS: '1m,5m',
  AGGREGATION_OUT_OF_ORDERNESS_MS: '1000',
  AGGREGATION_ALLOWED_LATENESS_MS: '2000',
  AGGREGATION_IDLE_MS: '1000',
  AGGREGATION_FLUSH_MS: '200',
};

const SIZES: [string, number][] = [
  ['1m', 60_000],
  ['5m', 300_000],
];
const records = (count: number) => dataset(count, { base: BASE });

describe('window aggregates (real emulators)', () => {
  it('equal the oracle, count duplicates once, finalise on idleness, and leave late records out', async () => {
    const t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '2', ...AGGREGATION }));
    try {
      const sent = records(240);
      await putOnStream(t, [...sent, ...sent.slice(0, 40)]); // duplicates count once
      const lastPut = Date.now();
      const { got, want } = await eventually(
        () => allFinal(t, sent, SIZES, BASE),
        'every window final',
        60_000,
      );
      process.stdout.write(
        `last window final ${Date.now() - lastPut} ms after the last record (idle 1 s, lateness 2 s)\n`,
      );
      compareWithOracle(got, want);

      const first = got.find((a) => a.window === '5m' && a.city_id === 'agg-city-0')!;
      const late = { ...sent[0], station_id: 'late-station', pm25_value: 999 };
      const post = await t.http.post('/measurements').send(late).expect(202);
      await eventually(async () => {
        const r = await t.http.get('/cities/agg-city-0/latest?limit=100');
        return r.body.items?.some(
          (m: { message_id: string }) => m.message_id === post.body.message_ids[0],
        )
          ? true
          : undefined;
      }, 'the late record stored raw');
      await waitUntilConsumed(t);
      const after = await t.http
        .get(
          `/cities/agg-city-0/aggregates?window=5m&from=${first.window_start}&to=${first.window_end}`,
        )
        .expect(200);
      expect(after.body.items[0]).toMatchObject({
        record_count: first.record_count,
        max_pm25: first.max_pm25,
      });
      const metrics = await t.http.get('/metrics');
      expect(
        Number(/^aq_late_records_total (\d+)/m.exec(metrics.text)?.[1]),
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await t.close();
    }
  }, 120_000);

  it('gives the same final aggregates when the consumer is killed mid-stream and another instance takes over', async () => {
    const env = isolatedEnv({
      KINESIS_SHARD_COUNT: '2',
      LEASE_FAILOVER_MS: '2000',
      ...AGGREGATION,
    });
    const t = await startApp({ ...env, CONSUMER_ENABLED: 'false' });
    try {
      const sent = records(300);
      const first = await spawnService(env);
      await putOnStream(t, sent.slice(0, 150));
      // Let it checkpoint some state, then kill it without warning.
      await eventually(async () => {
        const r = await t.http.get(
          `/cities/agg-city-0/aggregates?window=1m&from=${new Date(BASE).toISOString()}`,
        );
        return r.body.items?.length > 0 ? true : undefined;
      }, 'some aggregates written');
      await first.kill('SIGKILL');
      await putOnStream(t, [...sent.slice(150), ...sent.slice(100, 160)]);
      const second = await spawnService(env);
      try {
        const { got, want } = await eventually(
          () => allFinal(t, sent, SIZES, BASE),
          'every window final after the takeover',
          60_000,
        );
        compareWithOracle(got, want);
      } finally {
        await second.kill('SIGTERM');
      }
    } finally {
      await t.close();
    }
  }, 120_000);
});
