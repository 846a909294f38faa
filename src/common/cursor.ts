import { Inject, Injectable } from '@nestjs/common';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { AppError, ErrorCode } from './app-error';

/** What a cursor belongs to (route, city, window, range): a cursor of one query is refused on another. */
export type CursorScope = Readonly<Record<string, string>>;

/** The state a cursor carries (e.g. the last key returned): plain JSON values only. */
export type CursorState = Record<string, string | number>;

const MAX_CURSOR_LENGTH = 2048;

/** The OpenAPI description of every `cursor` query parameter. */
export const CURSOR_DESCRIPTION =
  'next_cursor of the previous page of the same query; opaque and signed: a cursor the service cannot honour (tampered, of another query, or signed with another key) is refused with 400 validation_failed: then start again without cursor';

/** What a client is told when a cursor is refused. */
export const CURSOR_REFUSED =
  'cursor is invalid, belongs to another query or was signed with another key (without CURSOR_SECRET: by another instance, or before a restart): start again without cursor';

const canonical = (scope: CursorScope) =>
  JSON.stringify(
    Object.keys(scope)
      .sort()
      .map((k) => [k, scope[k]]),
  );

/** The note on cursors in the description of every paged route. */
export const CURSOR_NOTE =
  'Cursors are signed with CURSOR_SECRET, shared by the instances behind one endpoint; without it each instance signs with a key of its own, and a cursor is valid on that instance for its life only. A cursor that is refused gets 400 `validation_failed`: start again without cursor.';

/** A 400 `validation_failed` for a cursor that is not one this query issued. */
export function refuseCursor(): never {
  throw new AppError(ErrorCode.ValidationFailed, 'invalid cursor', [CURSOR_REFUSED]);
}

/**
 * Signs and checks page cursors. The key comes from CURSOR_SECRET, so that every instance behind
 * one endpoint honours the others' cursors, across restarts too; without it, a random key per
 * process: a cursor is then valid on the instance that issued it, for its life.
 */
@Injectable()
export class CursorCodec {
  private readonly key: Buffer;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'cursorSecret'>) {
    this.key = config.cursorSecret
      ? createHash('sha256').update(config.cursorSecret).digest()
      : randomBytes(32);
  }

  private tag(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }

  /** An opaque, tamper-proof cursor: base64url(JSON of scope and state) "." base64url(HMAC-SHA256). */
  sign(scope: CursorScope, state: CursorState): string {
    const payload = Buffer.from(JSON.stringify({ s: canonical(scope), k: state })).toString(
      'base64url',
    );
    return `${payload}.${this.tag(payload).toString('base64url')}`;
  }

  /**
   * The state of a cursor signed with this key for this very scope; anything else (garbage, a
   * changed payload or tag, a cursor of another query or signed with another key) is a 400
   * `validation_failed`.
   */
  verify(cursor: string, scope: CursorScope): CursorState {
    if (typeof cursor !== 'string' || cursor.length > MAX_CURSOR_LENGTH) refuseCursor();
    const parts = cursor.split('.');
    if (
      parts.length !== 2 ||
      !/^[A-Za-z0-9_-]+$/.test(parts[0]) ||
      !/^[A-Za-z0-9_-]+$/.test(parts[1])
    )
      refuseCursor();
    const [payload, given] = parts;
    // Compared as text: base64url decoding ignores the spare bits of the last character, so a
    // tag with other spare bits would decode to the same bytes.
    const expected = Buffer.from(this.tag(payload).toString('base64url'));
    const actual = Buffer.from(given);
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
}
