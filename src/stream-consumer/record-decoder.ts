import { validateMeasurement } from '../common/measurement-validation';
import { Measurement, MeasurementInput, normaliseMeasurement } from '../domain/measurement';

export type DeadLetterReason = 'parse_error' | 'validation_error' | 'processing_error';

export interface StreamRecord {
  data: Uint8Array;
  sequenceNumber: string;
  /** A user record of a KPL aggregate: its index in the aggregate. */
  subSequenceNumber?: number;
  partitionKey: string;
  /** A user record of a KPL aggregate may route by this instead of its partition key. */
  explicitHashKey?: string;
  arrivedAt?: Date;
}

export type Decoded =
  { ok: true; measurement: Measurement } | { ok: false; reason: DeadLetterReason; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

/**
 * Turns a stream record into a measurement, or says why it cannot be one. The producer's
 * `ingestion_timestamp` and `message_id` are accepted but not trusted: the id is derived again.
 */
export function decodeRecord(record: StreamRecord): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(record.data));
  } catch (error) {
    const text = error instanceof SyntaxError ? 'not valid JSON' : 'not valid UTF-8';
    return { ok: false, reason: 'parse_error', message: `record data is ${text}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: 'validation_error', message: 'record data must be a JSON object' };
  }
  const {
    ingestion_timestamp: ingested,
    message_id: _id,
    ...fields
  } = value as Record<string, unknown>;
  const ingestedOk =
    typeof ingested === 'string' && ISO.test(ingested) && !Number.isNaN(Date.parse(ingested));
  // "Not in the future" is judged at the time the record was accepted, not by this clock.
  const arrived = record.arrivedAt?.getTime();
  const claimed = ingestedOk ? Date.parse(ingested) : undefined;
  const acceptedAt =
    claimed !== undefined && arrived !== undefined
      ? Math.min(claimed, arrived)
      : (claimed ?? arrived);
  const problems = validateMeasurement(fields, '', { now: acceptedAt });
  if (ingested !== undefined && !ingestedOk) {
    problems.push('ingestion_timestamp must be an ISO-8601 date-time');
  }
  if (problems.length > 0) {
    return { ok: false, reason: 'validation_error', message: problems.join('; ') };
  }
  const ingestedAt =
    typeof ingested === 'string' ? new Date(ingested) : (record.arrivedAt ?? new Date());
  return {
    ok: true,
    measurement: normaliseMeasurement(fields as unknown as MeasurementInput, ingestedAt),
  };
}

/** The payload as received: UTF-8 text when it is, else base64. */
export function encodePayload(data: Uint8Array): {
  payload: string;
  payload_encoding: 'utf8' | 'base64';
} {
  try {
    return { payload: utf8.decode(data), payload_encoding: 'utf8' };
  } catch {
    return { payload: Buffer.from(data).toString('base64'), payload_encoding: 'base64' };
  }
}
