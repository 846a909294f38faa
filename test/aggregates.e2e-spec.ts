import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { computeAqi } from '../src/domain/aqi';
import { spawnService } from './support/service-process';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';

const BASE = Date.UTC(2026, 0, 5, 10, 0, 0);
const AGGREGATION = {
  AGGREGATION_WINDOWS: '1m,5m',
  AGGREGATION_OUT_OF_ORDERNESS_MS: '1000',
  AGGREGATION_ALLOWED_LATENESS_MS: '2000',
  AGGREGATION_IDLE_MS: '1000',
  AGGREGATION_FLUSH_MS: '200',
};

interface Sent {
  city_id: string;
  city_name: string;
  timestamp: string;
  pm25_value: number;
  pm10_value: number;
  temperature_c: number;
  station_id: string;
}

/** Deterministic measurements over the 15 minutes of three 5-minute windows, for 3 cities. */
function dataset(count: number): Sent[] {
  return Array.from({ length: count }, (_, i) => ({
    city_id: `agg-city-${i % 3}`,
    city_name: `Agg City ${i % 3}`,
    timestamp: new Date(BASE + Math.floor((i * 15 * 60_000) / count)).toISOString(),
    pm25_value: Math.round(((i * 37) % 500) * 10) / 10 + 0.5,
    pm10_value: (i * 53) % 900,
    temperature_c: ((i * 7) % 60) - 20,
    station_id: `st-${i % 4}`,
  }));
}

/** The oracle, written apart from the service: group the distinct records and compute plainly. */
function expected(records: Sent[], window: string, ms: number) {
  const groups = new Map<string, Sent[]>();
  for (const r of records) {
    const start = new Date(Math.floor(Date.parse(r.timestamp) / ms) * ms).toISOString();
    const key = `${r.city_id}|${start}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [...groups].map(([key, rs]) => {
    const [city_id, window_start] = key.split('|');
    const avgPm25 = mean(rs.map((r) => r.pm25_value));
    const avgPm10 = mean(rs.map((r) => r.pm10_value));
    return {
      city_id,
      window,
      window_start,
      record_count: rs.length,
      avg_pm25: avgPm25,
      max_pm25: Math.max(...rs.map((r) => r.pm25_value)),
      min_pm10: Math.min(...rs.map((r) => r.pm10_value)),
      avg_temperature_c: mean(rs.map((r) => r.temperature_c)),
      aqi: computeAqi(Math.round(avgPm25 * 1e6) / 1e6, Math.round(avgPm10 * 1e6) / 1e6),
      final: true,
    };
  });
}

async function putOnStream(t: TestApp, records: Sent[]) {
  for (let i = 0; i < records.length; i += 100) {
    const chunk = records.slice(i, i + 100);
    await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: chunk.map((r) => ({
          PartitionKey: r.city_id,
          Data: Buffer.from(JSON.stringify(r)),
        })),
      }),
    );
  }
}

async function allFinal(t: TestApp, records: Sent[]) {
  const got: Record<string, unknown>[] = [];
  for (const [window] of [['1m'], ['5m']]) {
    for (const city of ['agg-city-0', 'agg-city-1', 'agg-city-2']) {
      const r = await t.http
        .get(
          `/cities/${city}/aggregates?window=${window}&from=${new Date(BASE).toISOString()}&to=${new Date(BASE + 3_600_000).toISOString()}`,
        )
        .expect(200);
      got.push(...r.body.items);
    }
  }
  const want = [...expected(records, '1m', 60_000), ...expected(records, '5m', 300_000)];
  return got.length === want.length && got.every((a) => a.final === true)
    ? { got, want }
    : undefined;
}

function compare(got: Record<string, unknown>[], want: ReturnType<typeof expected>) {
  const byKey = new Map(got.map((a) => [`${a.window}|${a.city_id}|${a.window_start}`, a]));
  for (const w of want) {
    const a = byKey.get(`${w.window}|${w.city_id}|${w.window_start}`);
    expect(a).toBeDefined();
    expect(a).toMatchObject({
      record_count: w.record_count,
      max_pm25: w.max_pm25,
      min_pm10: w.min_pm10,
      aqi: w.aqi,
      final: true,
    });
    expect(a!.avg_pm25 as number).toBeCloseTo(w.avg_pm25, 5);
    expect(a!.avg_temperature_c as number).toBeCloseTo(w.avg_temperature_c, 5);
  }
}

describe('window aggregates (real emulators)', () => {
  it('equal the oracle, count duplicates once, finalise on idleness, and leave late records out', async () => {
    const t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '2', ...AGGREGATION }));
    try {
      const records = dataset(240);
      await putOnStream(t, [...records, ...records.slice(0, 40)]); // duplicates count once
      const lastPut = Date.now();
      const { got, want } = await eventually(
        () => allFinal(t, records),
        'every window final',
        60_000,
      );
      process.stdout.write(
        `last window final ${Date.now() - lastPut} ms after the last record (idle 1 s, lateness 2 s)\n`,
      );
      compare(got, want);

      const first = got.find((a) => a.window === '5m' && a.city_id === 'agg-city-0')!;
      const late = { ...records[0], station_id: 'late-station', pm25_value: 999 };
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
      const records = dataset(300);
      const first = await spawnService(env);
      await putOnStream(t, records.slice(0, 150));
      // Let it checkpoint some state, then kill it without warning.
      await eventually(async () => {
        const r = await t.http.get(
          `/cities/agg-city-0/aggregates?window=1m&from=${new Date(BASE).toISOString()}`,
        );
        return r.body.items?.length > 0 ? true : undefined;
      }, 'some aggregates written');
      await first.kill('SIGKILL');
      await putOnStream(t, [...records.slice(150), ...records.slice(100, 160)]);
      const second = await spawnService(env);
      try {
        const { got, want } = await eventually(
          () => allFinal(t, records),
          'every window final after the takeover',
          60_000,
        );
        compare(got, want);
      } finally {
        await second.kill('SIGTERM');
      }
    } finally {
      await t.close();
    }
  }, 120_000);
});
