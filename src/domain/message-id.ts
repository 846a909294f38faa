import { createHash } from 'node:crypto';

/**
 * The identity of a measurement: the first 16 hex chars of SHA-256 of
 * `city_id + "_" + timestamp (+ "_" + station_id)`, with the timestamp already in UTC ISO with ms.
 */
export function messageId(cityId: string, utcTimestamp: string, stationId?: string): string {
  const content =
    stationId === undefined
      ? `${cityId}_${utcTimestamp}`
      : `${cityId}_${utcTimestamp}_${stationId}`;
  return createHash('sha256').update(content).digest('hex').slice(0, 16);
}
