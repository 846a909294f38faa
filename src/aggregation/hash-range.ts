import { createHash } from 'node:crypto';

/** A shard's range of 128-bit partition-key hashes, both ends inclusive. */
export interface HashRange {
  start: bigint;
  end: bigint;
}

/** Kinesis maps a partition key to the 128-bit MD5 of its UTF-8 bytes. */
export const partitionHash = (key: string) =>
  BigInt(`0x${createHash('md5').update(key).digest('hex')}`);

export const inRange = (hash: bigint, range: HashRange) => hash >= range.start && hash <= range.end;
