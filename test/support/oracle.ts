import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { computeAqi } from '../../src/domain/aqi';
import { TestApp } from './test-app';

export interface Sent {
  city_id: string;
  city_name: string;
  timestamp: string;
  pm25_value: number;
  pm10_value: number;
  temperature_c: number;
  station_id: string;
}

/** Deterministic measurements spread over `spanMs` from `base`, for `cities` cities. */
export function dataset(
  count: number,
  options: { base: number; spanMs?: number; cities?: string[]; prefix?: string },
): Sent[] {
  const cities = options.cities ?? [0, 1, 2].map((i) => `${options.prefix ?? 'agg-city'}-${i}`);
  const span = options.spanMs ?? 15 * 60_000;
  return Array.from({ length: count }, (_, i) => ({
    city_id: cities[i % cities.length],
    city_name: `City ${cities[i % cities.length]}`,
    timestamp: new Date(options.base + Math.floor((i * span) / count)).toISOString(),
    pm25_value: Math.round(((i * 37) % 500) * 10) / 10 + 0.5,
    pm10_value: (i * 53) % 900,
    temperature_c: ((i * 7) % 60) - 20 + 0.1 * (i % 3),
    station_id: `st-${i % 4}`,
  }));
}

export interface Expected {
  city_id: string;
  window: string;
  window_start: string;
  record_count: number;
  avg_pm25: number;
  max_pm25: number;
  min_pm10: number;
  avg_temperature_c: number;
  aqi: number;
}

/** The oracle, written apart from the service: group the distinct records and compute plainly. */
export function expected(records: Sent[], window: string, ms: number): Expected[] {
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
      aqi: computeAqi(avgPm25, avgPm10),
    };
  });
}

/**
 * Puts records straight on the stream (as another producer would), 100 a call; returns where each
 * landed (shard and sequence number), in order.
 */
export async function putOnStream(
  t: TestApp,
  records: Sent[],
): Promise<{ ShardId?: string; SequenceNumber?: string }[]> {
  const landed: { ShardId?: string; SequenceNumber?: string }[] = [];
  for (let i = 0; i < records.length; i += 100) {
    const chunk = records.slice(i, i + 100);
    const out = await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: chunk.map((r) => ({
          PartitionKey: r.city_id,
          Data: Buffer.from(JSON.stringify(r)),
        })),
      }),
    );
    if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records not put`);
    landed.push(...(out.Records ?? []));
  }
  return landed;
}

/** Every aggregate of `cities` for `windows` in the hour after `base`, through the API. */
export async function aggregatesOf(
  t: TestApp,
  cities: string[],
  windows: string[],
  base: number,
): Promise<Record<string, unknown>[]> {
  const got: Record<string, unknown>[] = [];
  for (const window of windows) {
    for (const city of cities) {
      const r = await t.http
        .get(
          `/cities/${city}/aggregates?window=${window}&from=${new Date(base).toISOString()}&to=${new Date(base + 3_600_000).toISOString()}&limit=1000`,
        )
        .expect(200);
      got.push(...r.body.items);
    }
  }
  return got;
}

/** The aggregates once every expected window is there and final; undefined before. */
export async function allFinal(
  t: TestApp,
  records: Sent[],
  sizes: [string, number][],
  base: number,
): Promise<{ got: Record<string, unknown>[]; want: Expected[] } | undefined> {
  const cities = [...new Set(records.map((r) => r.city_id))];
  const got = await aggregatesOf(
    t,
    cities,
    sizes.map(([w]) => w),
    base,
  );
  const want = sizes.flatMap(([w, ms]) => expected(records, w, ms));
  return got.length === want.length && got.every((a) => a.final === true)
    ? { got, want }
    : undefined;
}

/** Every window equals the oracle: counts, extremes, AQI, and averages at full precision. */
export function compareWithOracle(got: Record<string, unknown>[], want: Expected[]): void {
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
    expect(a!.avg_pm25 as number).toBeCloseTo(w.avg_pm25, 9);
    expect(a!.avg_temperature_c as number).toBeCloseTo(w.avg_temperature_c, 9);
  }
}

/** Every item of the aggregates table, read consistently (updated_at included: a rewrite shows). */
export async function aggregateTableItems(
  t: TestApp,
): Promise<Map<string, Record<string, unknown>>> {
  const items = new Map<string, Record<string, unknown>>();
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await t.db.send(
      new ScanCommand({
        TableName: t.config.tables.aggregates,
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    for (const i of page.Items ?? []) items.set(`${i.city_id}|${i.window_key}`, i);
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}
