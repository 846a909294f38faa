import { partitionHash } from '../aggregation/hash-range';
import { StreamRecord } from './record-decoder';
import { routedByCity } from './user-records';

const record = (fields: Partial<StreamRecord>): StreamRecord => ({
  data: Buffer.from('{}'),
  sequenceNumber: '1',
  partitionKey: 'city-a',
  ...fields,
});
const HASH = partitionHash('city-a');
const AROUND = { start: HASH - 1n, end: HASH + 1n };
const ELSEWHERE = { start: HASH + 1n, end: HASH + 10n };

describe('routedByCity: which records a shard adds to its city windows', () => {
  it('a record keyed by its city', () => {
    expect(routedByCity(record({}), 'city-a')).toBe(true);
    expect(routedByCity(record({ partitionKey: 'station-1' }), 'city-a')).toBe(false);
  });

  it('a KPL user record keyed by its city, with no explicit hash key or its city hash', () => {
    const user = { subSequenceNumber: 3 };
    expect(routedByCity(record({ ...user, explicitHashKey: String(HASH) }), 'city-a')).toBe(true);
    expect(routedByCity(record({ ...user, explicitHashKey: String(HASH + 1n) }), 'city-a')).toBe(
      false,
    );
    expect(routedByCity(record({ ...user, explicitHashKey: 'not a number' }), 'city-a')).toBe(
      false,
    );
    expect(routedByCity(record({ ...user, partitionKey: 'station-1' }), 'city-a')).toBe(false);
  });

  it('a KPL user record only on the shard whose hash range holds its city', () => {
    const user = record({ subSequenceNumber: 0 });
    expect(routedByCity(user, 'city-a', AROUND)).toBe(true);
    expect(routedByCity(user, 'city-a', ELSEWHERE)).toBe(false);
  });
});
