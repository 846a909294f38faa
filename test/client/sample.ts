/**
 * A small program a user of the API would write, typed only by what `openapi-typescript`
 * generates from the service's /docs-json (into ./generated, not committed). The e2e test
 * generates the types, type-checks this file strictly and runs it against the service.
 */
import type { components, paths } from './generated/api';

type Json<Op, Status extends number> = Op extends {
  responses: { [S in Status]: { content: { 'application/json': infer Body } } };
}
  ? Body
  : never;

export type Measurement = components['schemas']['MeasurementDto'];
export type ErrorBody = components['schemas']['ErrorResponseDto'];
export type Accepted = Json<paths['/measurements']['post'], 202>;
export type CityLatest = Json<paths['/cities/{cityId}/latest']['get'], 200>;
export type Cities = Json<paths['/cities']['get'], 200>;
export type Aggregates = Json<paths['/cities/{cityId}/aggregates']['get'], 200>;
export type DeadLetters = Json<paths['/dlq']['get'], 200>;

/** Worth sending again later: the service said so with its error code. */
export function isRetryable(error: ErrorBody): boolean {
  switch (error.code) {
    case 'rate_limited':
    case 'stream_unavailable':
    case 'buffer_full':
    case 'shutting_down':
      return true;
    case 'validation_failed':
    case 'malformed_json':
    case 'unauthorized':
    case 'payload_too_large':
      return false;
    default:
      return false;
  }
}

async function call<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const body: unknown = await res.json();
  if (!res.ok) {
    const error = body as ErrorBody;
    throw Object.assign(new Error(`${error.statusCode} ${error.code}: ${String(error.message)}`), {
      retryable: isRetryable(error),
    });
  }
  return body as T;
}

export async function send(baseUrl: string, measurements: Measurement[]): Promise<string[]> {
  const accepted = await call<Accepted>(`${baseUrl}/measurements`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(measurements),
  });
  const count: number = accepted.accepted;
  return accepted.message_ids.slice(0, count);
}

/** The newest AQI of a city, or undefined when the speed layer has none. */
export async function newestAqi(baseUrl: string, cityId: string): Promise<number | undefined> {
  try {
    const latest = await call<CityLatest>(
      `${baseUrl}/cities/${encodeURIComponent(cityId)}/latest?limit=1`,
    );
    const aqi: number = latest.items[0].aqi_value;
    return aqi;
  } catch (error) {
    if (/ not_found:/.test((error as Error).message)) return undefined;
    throw error;
  }
}

/** Every city, following next_cursor to the end. */
export async function allCities(baseUrl: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
    const page: Cities = await call<Cities>(`${baseUrl}/cities${query}`);
    for (const city of page.items) ids.push(`${city.city_id}:${city.latest.aqi_category}`);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return ids;
}

/** Final windows only, oldest first: what a batch job would copy. */
export async function finalWindows(
  baseUrl: string,
  cityId: string,
  window: string,
): Promise<{ start: string; aqi: number; count: number }[]> {
  const page = await call<Aggregates>(
    `${baseUrl}/cities/${encodeURIComponent(cityId)}/aggregates?window=${window}&limit=1000`,
  );
  return page.items
    .filter((a) => a.final)
    .map((a) => ({ start: a.window_start, aqi: a.aqi, count: a.record_count }));
}
