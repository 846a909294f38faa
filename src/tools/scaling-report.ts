export interface ScalingCase {
  shards: number;
  cities: number;
  windows: string;
}

export interface ScalingResult extends ScalingCase {
  rate: number;
  seconds: number;
  consumed: number;
  serviceCpuS: number;
  rssMb: number;
  /** DynamoDB calls by operation, from the start of the load until the backlog was drained. */
  calls: Record<string, number>;
  idleSeconds: number;
  /** Estimated read units consumed on the lease table over the idle period. */
  idleLeaseReadUnits: number;
}

/** One factor at a time from 4 shards, 100 cities, `5m`, then all of them high at once. */
export function scalingCases(): ScalingCase[] {
  const base = { shards: 4, cities: 100, windows: '5m' };
  return [
    base,
    { ...base, shards: 16 },
    { ...base, shards: 64 },
    { ...base, cities: 10_000 },
    { ...base, windows: '1m,5m,15m,1h' },
    { shards: 64, cities: 10_000, windows: '1m,5m,15m,1h' },
  ];
}

/**
 * The rows of `--scaling-cases` ("1,3,6"), numbered from 1 as in the table; undefined runs them
 * all. Anything else is refused before the run starts, so that a typo does not run nothing.
 */
export function scalingRows(list: string | undefined): number[] | undefined {
  if (list === undefined) return undefined;
  const count = scalingCases().length;
  const rows = list.split(',').map((part) => part.trim());
  const bad = rows.filter((r) => !/^\d+$/.test(r) || Number(r) < 1 || Number(r) > count);
  if (rows.length === 0 || bad.length > 0)
    throw new Error(
      `--scaling-cases takes row numbers from 1 to ${count}, comma-separated; not ${JSON.stringify(list)}`,
    );
  return rows.map(Number);
}

export const perThousand = (count: number, measurements: number) =>
  measurements > 0 ? (count * 1000) / measurements : Number.NaN;

const fixed = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : '—');

export function scalingRow(r: ScalingResult) {
  const total = Object.values(r.calls).reduce((s, n) => s + n, 0);
  return {
    cpuUsPerMeasurement: r.consumed > 0 ? (r.serviceCpuS * 1e6) / r.consumed : Number.NaN,
    callsPer1000: perThousand(total, r.consumed),
    byOperation: Object.entries(r.calls)
      .sort((a, b) => b[1] - a[1])
      .map(([op, n]) => `${op} ${fixed(perThousand(n, r.consumed), 1)}`)
      .join(', '),
    leaseReadUnitsPerMinute:
      r.idleSeconds > 0 ? (r.idleLeaseReadUnits * 60) / r.idleSeconds : Number.NaN,
  };
}

export function scalingTable(results: ScalingResult[]): string {
  const rows = results.map((r) => {
    const row = scalingRow(r);
    return `| ${r.shards} | ${r.cities} | ${r.windows} | ${r.rate} | ${fixed(r.consumed / r.seconds, 0)} | ${fixed(row.cpuUsPerMeasurement, 0)} | ${fixed(r.rssMb, 0)} | ${fixed(row.callsPer1000, 1)} (${row.byOperation}) | ${fixed(row.leaseReadUnitsPerMinute, 1)} |`;
  });
  return [
    '| shards | cities | windows | offered /s | consumed /s | service CPU µs / measurement | RSS MB | DynamoDB calls / 1,000 measurements (by operation) | lease-table read units / min at idle (estimated) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
