import {
  ScalingResult,
  scalingCases,
  scalingRow,
  scalingRows,
  scalingTable,
} from './scaling-report';

const result = (over: Partial<ScalingResult> = {}): ScalingResult => ({
  shards: 4,
  cities: 100,
  windows: '5m',
  rate: 1000,
  seconds: 30,
  consumed: 30_000,
  serviceCpuS: 6,
  rssMb: 180,
  calls: { BatchWriteItem: 1500, TransactWriteItems: 120, UpdateItem: 3000 },
  idleSeconds: 30,
  idleLeaseReadUnits: 40,
  ...over,
});

describe('scaling report', () => {
  it('covers shards 4/16/64, cities 100/10,000 and one or four window sizes', () => {
    const cases = scalingCases();
    expect(new Set(cases.map((c) => c.shards))).toEqual(new Set([4, 16, 64]));
    expect(new Set(cases.map((c) => c.cities))).toEqual(new Set([100, 10_000]));
    expect(new Set(cases.map((c) => c.windows))).toEqual(new Set(['5m', '1m,5m,15m,1h']));
  });

  it('takes the rows to run by their numbers in the table and refuses anything else', () => {
    expect(scalingRows(undefined)).toBeUndefined();
    expect(scalingRows('1,3, 6')).toEqual([1, 3, 6]);
    for (const bad of ['', '0', '7', '1,x', '4 shards', '1.5', '-1'])
      expect(() => scalingRows(bad)).toThrow(/row numbers from 1 to 6/);
  });

  it('turns counts into CPU and calls per measurement and read units per minute', () => {
    const row = scalingRow(result());
    expect(row.cpuUsPerMeasurement).toBe(200);
    expect(row.callsPer1000).toBe(154);
    expect(row.byOperation).toBe('UpdateItem 100.0, BatchWriteItem 50.0, TransactWriteItems 4.0');
    expect(row.leaseReadUnitsPerMinute).toBe(80);
    expect(scalingRow(result({ consumed: 0 })).callsPer1000).toBeNaN();
  });

  it('renders one row per case', () => {
    const table = scalingTable([result(), result({ shards: 64 })]);
    expect(table.split('\n').filter((l) => /^\| \d/.test(l))).toHaveLength(2);
    expect(table).toContain('| 64 | 100 | 5m | 1000 | 1000 | 200 | 180 | 154.0 (');
  });
});
