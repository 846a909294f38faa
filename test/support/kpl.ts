import { createHash } from 'node:crypto';
import { AggregatedRecord, KPL_MAGIC } from '../../src/stream-consumer/kpl-aggregate';

/** One user record for a KPL aggregate. */
export interface KplUserRecord {
  partitionKey: string;
  explicitHashKey?: string;
  data: string | Uint8Array;
}

/** The raw message, for aggregates a real KPL would not build (indices out of range). */
export interface KplMessage {
  partition_key_table: string[];
  explicit_hash_key_table?: string[];
  records: { partition_key_index: number; explicit_hash_key_index?: number; data: Uint8Array }[];
}

/** Magic bytes, the message, and its MD5, as the KPL frames an aggregated record. */
export function frame(message: Uint8Array): Buffer {
  const md5 = createHash('md5').update(message).digest();
  return Buffer.concat([KPL_MAGIC, message, md5]);
}

export function encodeMessage(message: KplMessage): Buffer {
  return frame(AggregatedRecord.encode(AggregatedRecord.fromObject(message)).finish());
}

/** A KPL aggregated record of `records`, with partition keys and hash keys in their tables. */
export function kplAggregate(records: KplUserRecord[]): Buffer {
  const keys: string[] = [];
  const hashKeys: string[] = [];
  const indexIn = (table: string[], value: string) => {
    const found = table.indexOf(value);
    return found >= 0 ? found : table.push(value) - 1;
  };
  return encodeMessage({
    partition_key_table: keys,
    explicit_hash_key_table: hashKeys,
    records: records.map((r) => ({
      partition_key_index: indexIn(keys, r.partitionKey),
      ...(r.explicitHashKey === undefined
        ? {}
        : { explicit_hash_key_index: indexIn(hashKeys, r.explicitHashKey) }),
      data: typeof r.data === 'string' ? Buffer.from(r.data) : r.data,
    })),
  });
}

/** The same aggregate with one bit of its MD5 trailer flipped. */
export function withBadMd5(aggregate: Buffer): Buffer {
  const copy = Buffer.from(aggregate);
  copy[copy.length - 1] ^= 0x01;
  return copy;
}
