import type { IncomingMessage, ServerResponse } from 'node:http';
import { loggedUrl, requestId } from './request-logging';

function idFor(header: string | string[] | undefined) {
  const headers: Record<string, string> = {};
  const res = { setHeader: (name: string, value: string) => (headers[name] = value) };
  const id = requestId(
    { headers: { 'x-request-id': header } } as unknown as IncomingMessage,
    res as unknown as ServerResponse,
  );
  expect(headers['X-Request-Id']).toBe(id);
  return id;
}

describe('requestId', () => {
  it('keeps a sane X-Request-Id', () => {
    expect(idFor('abc-123_x.y')).toBe('abc-123_x.y');
    expect(idFor('a'.repeat(128))).toBe('a'.repeat(128));
  });

  it.each([undefined, '', 'a'.repeat(129), 'a b', 'x"}{"forged":1', ['a', 'b']])(
    'generates a UUID instead of %p',
    (header) => {
      expect(idFor(header)).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
    },
  );
});

describe('loggedUrl', () => {
  it('leaves URLs without credentials untouched', () => {
    expect(loggedUrl('/cities/x/latest')).toBe('/cities/x/latest');
    expect(loggedUrl('/cities/x/aggregates?from=2026-01-01T00:00:00Z&window=5m')).toBe(
      '/cities/x/aggregates?from=2026-01-01T00:00:00Z&window=5m',
    );
  });

  it('redacts query parameters that look like credentials', () => {
    expect(loggedUrl('/dlq?limit=5&api_key=s3cret&token=t')).toBe(
      '/dlq?limit=5&api_key=%5BRedacted%5D&token=%5BRedacted%5D',
    );
  });
});
