import { encodeMessage, frame, kplAggregate, withBadMd5 } from '../../test/support/kpl';
import { AggregatedRecord, deaggregate, KPL_MAGIC } from './kpl-aggregate';
import { StreamRecord } from './record-decoder';

const ARRIVED = new Date('2026-03-01T10:00:00Z');
const onStream = (data: Uint8Array): StreamRecord => ({
  data,
  sequenceNumber: '49590',
  partitionKey: 'outer-key',
  arrivedAt: ARRIVED,
});

describe('deaggregate', () => {
  it('gives each user record of an aggregate with its own partition key, hash key and index', () => {
    const binary = Uint8Array.from([0, 255, 7]);
    const aggregate = kplAggregate([
      { partitionKey: 'city-a', data: '{"n":1}' },
      { partitionKey: 'city-b', explicitHashKey: '123456789', data: '{"n":2}' },
      { partitionKey: 'city-a', data: binary },
    ]);
    expect(aggregate.subarray(0, 4)).toEqual(KPL_MAGIC);

    const result = deaggregate(onStream(aggregate));

    expect(result).toEqual({
      ok: true,
      aggregated: true,
      records: [
        { partitionKey: 'city-a', subSequenceNumber: 0, data: Buffer.from('{"n":1}') },
        {
          partitionKey: 'city-b',
          explicitHashKey: '123456789',
          subSequenceNumber: 1,
          data: Buffer.from('{"n":2}'),
        },
        { partitionKey: 'city-a', subSequenceNumber: 2, data: Buffer.from(binary) },
      ].map((r) => ({ ...r, sequenceNumber: '49590', arrivedAt: ARRIVED })),
    });
  });

  it('passes a plain record through as it is', () => {
    const plain = onStream(Buffer.from('{"city_id":"x"}'));
    expect(deaggregate(plain)).toEqual({ ok: true, aggregated: false, records: [plain] });
    const short = onStream(Buffer.from(KPL_MAGIC));
    expect(deaggregate(short)).toEqual({ ok: true, aggregated: false, records: [short] });
  });

  it('refuses the whole aggregate when its MD5 trailer does not match', () => {
    const corrupt = withBadMd5(kplAggregate([{ partitionKey: 'city-a', data: '{}' }]));
    expect(deaggregate(onStream(corrupt))).toEqual({
      ok: false,
      message: 'KPL aggregated record: MD5 trailer does not match',
    });
  });

  it('refuses an aggregate whose protobuf message does not decode, though its MD5 matches', () => {
    const truncated = AggregatedRecord.encode(
      AggregatedRecord.fromObject({
        partition_key_table: ['k'],
        records: [{ partition_key_index: 0, data: Buffer.from('x'.repeat(40)) }],
      }),
    )
      .finish()
      .subarray(0, 12);
    const missingData = Buffer.from([0x1a, 0x02, 0x08, 0x00]); // a record with only its key index
    for (const message of [truncated, missingData]) {
      const result = deaggregate(onStream(frame(message)));
      expect(result).toEqual({
        ok: false,
        message: expect.stringMatching(/^KPL aggregated record: protobuf message does not decode/),
      });
    }
  });

  it('refuses an aggregate whose user record points past the partition or hash key table', () => {
    const outOfRange = encodeMessage({
      partition_key_table: ['city-a'],
      records: [
        { partition_key_index: 0, data: Buffer.from('{}') },
        { partition_key_index: 1, data: Buffer.from('{}') },
      ],
    });
    expect(deaggregate(onStream(outOfRange))).toEqual({
      ok: false,
      message: 'KPL aggregated record: user record 1 has partition key index 1 out of range',
    });
    const hashOutOfRange = encodeMessage({
      partition_key_table: ['city-a'],
      explicit_hash_key_table: [],
      records: [{ partition_key_index: 0, explicit_hash_key_index: 0, data: Buffer.from('{}') }],
    });
    expect(deaggregate(onStream(hashOutOfRange))).toMatchObject({
      ok: false,
      message: expect.stringContaining('explicit hash key index 0 out of range'),
    });
  });

  it('refuses an aggregate without user records', () => {
    expect(deaggregate(onStream(encodeMessage({ partition_key_table: [], records: [] })))).toEqual({
      ok: false,
      message: 'KPL aggregated record: it holds no user record',
    });
  });
});
