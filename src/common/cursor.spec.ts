import { AppError, ErrorCode } from './app-error';
import { CursorCodec } from './cursor';

const codec = new CursorCodec({ cursorSecret: '' });
const signCursor = codec.sign.bind(codec);
const verifyCursor = codec.verify.bind(codec);

const scope = { route: 'latest', city: 'delhi' };
const state = { city_id: 'delhi', sk: '2026-11-26T08:00:00.000Z#9f86d081884c7d65' };

function refused(run: () => unknown): AppError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe(ErrorCode.ValidationFailed);
    return error as AppError;
  }
  throw new Error('the cursor was accepted');
}

describe('page cursors', () => {
  it('round-trips the state for the same scope, whatever the order of its keys', () => {
    const cursor = signCursor(scope, state);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyCursor(cursor, scope)).toEqual(state);
    expect(verifyCursor(cursor, { city: 'delhi', route: 'latest' })).toEqual(state);
  });

  it('refuses a changed payload', () => {
    const [payload, tag] = signCursor(scope, state).split('.');
    const json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    json.k.sk = '2099-01-01T00:00:00.000Z#0000000000000000';
    const forged = Buffer.from(JSON.stringify(json)).toString('base64url');
    refused(() => verifyCursor(`${forged}.${tag}`, scope));
  });

  it('refuses a changed or missing tag', () => {
    const cursor = signCursor(scope, state);
    const last = cursor.at(-1) === 'A' ? 'B' : 'A';
    refused(() => verifyCursor(cursor.slice(0, -1) + last, scope));
    // The same bytes with other spare bits in the last character (32 bytes leave 2 spare).
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const spare = alphabet[alphabet.indexOf(cursor.at(-1)!) | 1];
    const alike = cursor.slice(0, -1) + spare;
    expect(Buffer.from(alike.split('.')[1], 'base64url')).toEqual(
      Buffer.from(cursor.split('.')[1], 'base64url'),
    );
    refused(() => verifyCursor(alike, scope));
    refused(() => verifyCursor(cursor.split('.')[0], scope));
    refused(() => verifyCursor(`${cursor.split('.')[0]}.`, scope));
  });

  it('refuses a cursor of another query', () => {
    const cursor = signCursor(scope, state);
    refused(() => verifyCursor(cursor, { route: 'latest', city: 'lisbon' }));
    refused(() => verifyCursor(cursor, { route: 'aggregates', city: 'delhi' }));
    refused(() => verifyCursor(cursor, { ...scope, window: '5m' }));
  });

  it('refuses garbage with a message that says to start again', () => {
    for (const garbage of ['', 'x', 'a.b.c', '!!!.???', 'eyJ9.eyJ9', 'a'.repeat(5000)]) {
      const error = refused(() => verifyCursor(garbage, scope));
      expect(error.details.join()).toMatch(/start again/);
    }
  });

  it('honours a cursor of another instance only when both share CURSOR_SECRET', () => {
    const secret = 'a-secret-shared-by-every-instance-0123456789';
    const cursor = new CursorCodec({ cursorSecret: secret }).sign(scope, state);
    expect(new CursorCodec({ cursorSecret: secret }).verify(cursor, scope)).toEqual(state);
    refused(() => new CursorCodec({ cursorSecret: `${secret}!` }).verify(cursor, scope));
    refused(() => new CursorCodec({ cursorSecret: '' }).verify(cursor, scope));
    refused(() => verifyCursor(new CursorCodec({ cursorSecret: '' }).sign(scope, state), scope));
  });
});
