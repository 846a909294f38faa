import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'aq_dashboard';
export const SESSION_TTL_MS = 60 * 60_000;

/**
 * Short-lived, signed tokens that let a browser open the dashboard and its event stream when
 * reads need a key (an EventSource cannot send X-API-Key). The token is proof that the holder
 * showed a key, never the key itself, and travels only in an HttpOnly cookie, never in a URL.
 * The signing key is derived from the configured API keys: every instance with the same keys
 * accepts the others' tokens, and rotating the keys ends every session.
 */
export class DashboardSessions {
  private readonly signingKey: Buffer;

  constructor(
    apiKeys: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    const material = [...apiKeys].sort().join('\u0000');
    this.signingKey = createHash('sha256').update(`dashboard-session\u0000${material}`).digest();
  }

  issue(): { token: string; expiresAt: number } {
    const expiresAt = this.now() + SESSION_TTL_MS;
    const payload = Buffer.from(JSON.stringify({ exp: expiresAt })).toString('base64url');
    return { token: `${payload}.${this.tag(payload)}`, expiresAt };
  }

  /** The expiry of a valid, unexpired token; undefined for anything else. */
  verify(token: string | undefined): number | undefined {
    if (!token || token.length > 512) return undefined;
    const [payload, tag, ...rest] = token.split('.');
    if (!payload || !tag || rest.length > 0) return undefined;
    const expected = Buffer.from(this.tag(payload));
    const given = Buffer.from(tag);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const { exp } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
        exp?: unknown;
      };
      return typeof exp === 'number' && exp > this.now() ? exp : undefined;
    } catch {
      return undefined;
    }
  }

  /** The token in a Cookie header, if any. */
  static fromCookieHeader(header: string | undefined): string | undefined {
    for (const part of (header ?? '').split(';')) {
      const at = part.indexOf('=');
      if (at > 0 && part.slice(0, at).trim() === SESSION_COOKIE) return part.slice(at + 1).trim();
    }
    return undefined;
  }

  /** The Set-Cookie value: HttpOnly, SameSite=Strict, Secure on HTTPS. */
  static cookie(token: string, expiresAt: number, secure: boolean, now = Date.now()): string {
    const maxAge = Math.max(0, Math.round((expiresAt - now) / 1000));
    return [
      `${SESSION_COOKIE}=${token}`,
      'Path=/',
      `Max-Age=${maxAge}`,
      'HttpOnly',
      'SameSite=Strict',
      ...(secure ? ['Secure'] : []),
    ].join('; ');
  }

  private tag(payload: string): string {
    return createHmac('sha256', this.signingKey).update(payload).digest('base64url');
  }
}
