import { hash } from 'node:crypto';

/**
 * The identity of a measurement: the first 16 hex chars of SHA-256 of
 * `city_id + "_" + timestamp (+ "_" + station_id)`, with the timestamp already in UTC ISO with ms.
 * Computed for every measurement twice (at ingestion and again by the consumer, which does not
 * trust a producer's id): the one-shot `hash` takes about 0.8 µs against 1.9 µs for a
 * `createHash` object on the bench machine.
 */
export function messageId(cityId: string, utcTimestamp: string, stationId?: string): string {
  const content =
    stationId === undefined
      ? `${cityId}_${utcTimestamp}`
      : `${cityId}_${utcTimestamp}_${stationId}`;
  return hash('sha256', content, 'hex').slice(0, 16);
}
