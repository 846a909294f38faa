import { HashRange, inRange, partitionHash } from '../aggregation/hash-range';
import { deaggregate } from './kpl-aggregate';
import { Checkpoint } from './lease.repository';
import { Decoded, decodeRecord, StreamRecord } from './record-decoder';
import { describeError } from './shard-retrier';

/**
 * One record to process: a plain record, a user record of a KPL aggregate, or a whole aggregate
 * that is corrupt. `reached` is the position once it and everything before it are processed.
 */
export interface UserRecord {
  record: StreamRecord;
  reached: Checkpoint;
  corrupt?: string;
}

/**
 * The records of a page as user records, without those already processed: after a checkpoint
 * inside an aggregate the page starts at that aggregate (AT_SEQUENCE_NUMBER), and its user
 * records up to the checkpoint's sub-sequence number are skipped.
 */
export function userRecords(
  records: StreamRecord[],
  processed: Checkpoint | undefined,
): UserRecord[] {
  const units: UserRecord[] = [];
  for (const record of records) {
    const whole = { sequenceNumber: record.sequenceNumber };
    const result = deaggregate(record);
    if (!result.ok) {
      units.push({ record, reached: whole, corrupt: result.message });
      continue;
    }
    const last = result.records.length - 1;
    for (const [i, user] of result.records.entries()) {
      if (isProcessed(user, processed)) continue;
      units.push({
        record: user,
        reached: result.aggregated && i < last ? { ...whole, subSequenceNumber: i } : whole,
      });
    }
  }
  return units;
}

/** The measurement of a user record, or why it is not one (a corrupt aggregate included). */
export function decodeUserRecord(unit: UserRecord): Decoded {
  if (unit.corrupt !== undefined)
    return { ok: false, reason: 'parse_error', message: unit.corrupt };
  try {
    return decodeRecord(unit.record);
  } catch (error) {
    return {
      ok: false,
      reason: 'processing_error',
      message: `decoding failed: ${describeError(error)}`,
    };
  }
}

function isProcessed(user: StreamRecord, processed: Checkpoint | undefined): boolean {
  return (
    processed?.subSequenceNumber !== undefined &&
    user.subSequenceNumber !== undefined &&
    user.sequenceNumber === processed.sequenceNumber &&
    user.subSequenceNumber <= processed.subSequenceNumber
  );
}

const DECIMAL = /^\d{1,39}$/;

/**
 * Whether a record is routed by its city, so that every record of a city lands on the one shard
 * that holds the city's windows (the shard whose hash range holds the MD5 of the city id): its
 * partition key is the city and its explicit hash key, if any, is the city's hash. A KPL user
 * record also has to lie in this shard's range: Kinesis routes the aggregate, not its user
 * records, and a KPL with a stale shard map after a reshard can aggregate a user record into a
 * shard that does not hold its city (KCL drops such user records).
 */
export function routedByCity(record: StreamRecord, cityId: string, range?: HashRange): boolean {
  if (record.partitionKey !== cityId) return false;
  const hashKey = record.explicitHashKey;
  const userRecord = record.subSequenceNumber !== undefined && range !== undefined;
  // Routed by its partition key alone (the common case): Kinesis put it on the city's shard.
  if (hashKey === undefined && !userRecord) return true;
  const hash = partitionHash(cityId);
  if (hashKey !== undefined && !(DECIMAL.test(hashKey) && BigInt(hashKey) === hash)) return false;
  return !userRecord || inRange(hash, range);
}
