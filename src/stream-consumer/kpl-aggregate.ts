import { createHash } from 'node:crypto';
import { parse } from 'protobufjs';
import { StreamRecord } from './record-decoder';

/** The first bytes of a record the Kinesis Producer Library aggregated. */
export const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
const MD5_BYTES = 16;

/** The KPL's aggregation format: the protobuf message between the magic and its MD5. */
export const AggregatedRecord = parse(
  `
  syntax = "proto2";
  message AggregatedRecord {
    repeated string partition_key_table = 1;
    repeated string explicit_hash_key_table = 2;
    repeated Record records = 3;
  }
  message Record {
    required uint64 partition_key_index = 1;
    optional uint64 explicit_hash_key_index = 2;
    required bytes data = 3;
    repeated Tag tags = 4;
  }
  message Tag {
    required string key = 1;
    optional string value = 2;
  }
`,
  { keepCase: true },
).root.lookupType('AggregatedRecord');

interface Decoded {
  partition_key_table?: string[];
  explicit_hash_key_table?: string[];
  records?: { partition_key_index: number; explicit_hash_key_index?: number; data: Uint8Array }[];
}

export type Deaggregated =
  { ok: true; aggregated: boolean; records: StreamRecord[] } | { ok: false; message: string };

const corrupt = (why: string): Deaggregated => ({
  ok: false,
  message: `KPL aggregated record: ${why}`,
});

/**
 * The user records of a KPL aggregated record, each with its own partition key (and explicit
 * hash key) and its index as `subSequenceNumber`; any other record as it is. An aggregate whose
 * MD5 does not match or whose message does not decode yields no user record at all.
 */
export function deaggregate(record: StreamRecord): Deaggregated {
  const data = Buffer.from(record.data.buffer, record.data.byteOffset, record.data.byteLength);
  if (data.byteLength < KPL_MAGIC.length + MD5_BYTES || !data.subarray(0, 4).equals(KPL_MAGIC))
    return { ok: true, aggregated: false, records: [record] };
  const message = data.subarray(KPL_MAGIC.length, data.byteLength - MD5_BYTES);
  const md5 = createHash('md5').update(message).digest();
  if (!md5.equals(data.subarray(data.byteLength - MD5_BYTES)))
    return corrupt('MD5 trailer does not match');
  let decoded: Decoded;
  try {
    decoded = AggregatedRecord.toObject(AggregatedRecord.decode(message), {
      longs: Number,
    }) as Decoded;
  } catch (error) {
    return corrupt(`protobuf message does not decode (${(error as Error).message})`);
  }
  const keys = decoded.partition_key_table ?? [];
  const hashKeys = decoded.explicit_hash_key_table ?? [];
  const records: StreamRecord[] = [];
  for (const [i, r] of (decoded.records ?? []).entries()) {
    const partitionKey = keys[r.partition_key_index];
    if (partitionKey === undefined)
      return corrupt(
        `user record ${i} has partition key index ${r.partition_key_index} out of range`,
      );
    const explicitHashKey =
      r.explicit_hash_key_index === undefined ? undefined : hashKeys[r.explicit_hash_key_index];
    if (r.explicit_hash_key_index !== undefined && explicitHashKey === undefined)
      return corrupt(
        `user record ${i} has explicit hash key index ${r.explicit_hash_key_index} out of range`,
      );
    records.push({
      data: r.data,
      sequenceNumber: record.sequenceNumber,
      subSequenceNumber: i,
      partitionKey,
      ...(explicitHashKey === undefined ? {} : { explicitHashKey }),
      arrivedAt: record.arrivedAt,
    });
  }
  return records.length > 0
    ? { ok: true, aggregated: true, records }
    : corrupt('it holds no user record');
}
