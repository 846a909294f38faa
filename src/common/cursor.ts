import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, ErrorCode } from './app-error';

/**
 * The signing key of page cursors: random per process, so a cursor is valid for the life of the
 * instance that issued it (a restarted or different instance refuses it with 400, and the client
 * starts again from the first page). Nothing to configure, nothing to leak.
 */
const KEY = randomBytes(32);

/** What a cursor belongs to (route, city, window, range): a cursor of one query is refused on another. */
export type CursorScope = Readonly<Record<string, string>>;

/** The state a cursor carries (e.g. the last key returned): plain JSON values only. */
export type CursorState = Record<string, string | number>;

const MAX_CURSOR_LENGTH = 2048;

/** The OpenAPI description of every `cursor` query parameter. */
export const CURSOR_DESCRIPTION =
  'next_cursor of the previous page of the same query; opaque and signed by the instance that issued it, valid for the life of that instance: after a restart it may be refused (400 validation_failed), then start again without cursor';

/** What a client is told when a cursor is refused. */
export const CURSOR_REFUSED =
  'cursor is invalid, belongs to another query or has expired (cursors last for the life of the instance): start again without cursor';

const canonical = (scope: CursorScope) =>
  JSON.stringify(
    Object.keys(scope)
      .sort()
      .map((k) => [k, scope[k]]),
  );

const tag = (payload: string) => createHmac('sha256', KEY).update(payload).digest();

/** An opaque, tamper-proof cursor: base64url(JSON of scope and state) "." base64url(HMAC-SHA256). */
export function signCursor(scope: CursorScope, state: CursorState): string {
  const payload = Buffer.from(JSON.stringify({ s: canonical(scope), k: state })).toString(
    'base64url',
  );
  return `${payload}.${tag(payload).toString('base64url')}`;
}

/** The note on cursors in the description of every paged route. */
export const CURSOR_NOTE =
  'Cursors are signed by the instance that issued them and valid for its life only: after a restart a cursor may be refused with 400 `validation_failed`; start again without cursor.';

/** A 400 `validation_failed` for a cursor that is not one this query issued. */
export function refuseCursor(): never {
  throw new AppError(ErrorCode.ValidationFailed, 'invalid cursor', [CURSOR_REFUSED]);
}

/**
 * The state of a cursor signed by this process for this very scope; anything else (garbage, a
 * changed payload or tag, a cursor of another query or of another instance) is a 400
 * `validation_failed`.
 */
export function verifyCursor(cursor: string, scope: CursorScope): CursorState {
  if (typeof cursor !== 'string' || cursor.length > MAX_CURSOR_LENGTH) refuseCursor();
  const parts = cursor.split('.');
  if (
    parts.length !== 2 ||
    !/^[A-Za-z0-9_-]+$/.test(parts[0]) ||
    !/^[A-Za-z0-9_-]+$/.test(parts[1])
  )
    refuseCursor();
  const [payload, given] = parts;
  const expected = tag(payload);
  const actual = Buffer.from(given, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) refuseCursor();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    refuseCursor();
  }
  if (decoded === null || typeof decoded !== 'object') refuseCursor();
  const { s, k } = decoded as { s?: unknown; k?: unknown };
  if (s !== canonical(scope) || k === null || typeof k !== 'object' || Array.isArray(k))
    refuseCursor();
  const state = k as Record<string, unknown>;
  for (const value of Object.values(state))
    if (typeof value !== 'string' && typeof value !== 'number') refuseCursor();
  return state as CursorState;
}
