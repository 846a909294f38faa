import { Injectable } from '@nestjs/common';
import { ThrottlerException, ThrottlerGuard, ThrottlerRequest } from '@nestjs/throttler';
import { createHash } from 'node:crypto';
import { API_KEY_HEADER, VERIFIED_KEY } from './api-key.guard';

const suffixOf = (name: string | undefined) =>
  name === undefined || name === 'default' ? '' : `-${name}`;

/**
 * Rate limits writes per verified API key (a digest of it, never the key), per client address
 * otherwise. Runs after ApiKeyGuard.
 *
 * Every throttled response, the 429 included, carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
 * `X-RateLimit-Reset` (seconds) and the IETF draft's `RateLimit-Policy: "default";q=<limit>;w=<s>`
 * and `RateLimit: "default";r=<remaining>;t=<s>`; a 429 also `Retry-After` (seconds). The
 * throttler itself sends only Retry-After on a 429.
 */
@Injectable()
export class WriteThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string | symbol, unknown>): Promise<string> {
    const headers = req.headers as Record<string, string | undefined>;
    const key = headers[API_KEY_HEADER];
    // Only a key the ApiKeyGuard verified: a made-up header must not buy a fresh bucket.
    if (req[VERIFIED_KEY] === true && typeof key === 'string') {
      return `key:${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
    }
    return `ip:${String(req.ip ?? 'unknown')}`;
  }

  protected override async handleRequest(props: ThrottlerRequest): Promise<boolean> {
    try {
      return await super.handleRequest(props);
    } catch (error) {
      if (error instanceof ThrottlerException) this.setBlockedHeaders(props);
      throw error;
    } finally {
      this.setDraftHeaders(props);
    }
  }

  /** On a 429 the throttler sets only Retry-After: the X-RateLimit-* trio too, 0 remaining. */
  private setBlockedHeaders({ context, throttler, limit }: ThrottlerRequest): void {
    const { res } = this.getRequestResponse(context);
    if (typeof res.getHeader !== 'function') return;
    const suffix = suffixOf(throttler.name);
    const retryAfter = res.getHeader(`Retry-After${suffix}`) as string | number | undefined;
    if (retryAfter === undefined) return; // headers are off
    this.setResponseHeader(res, `${this.headerPrefix}-Limit${suffix}`, limit);
    this.setResponseHeader(res, `${this.headerPrefix}-Remaining${suffix}`, 0);
    this.setResponseHeader(res, `${this.headerPrefix}-Reset${suffix}`, retryAfter);
  }

  /** The IETF fields, from the X-RateLimit-* values just set (nothing when headers are off). */
  private setDraftHeaders({ context, throttler, ttl }: ThrottlerRequest): void {
    const { res } = this.getRequestResponse(context);
    if (typeof res.getHeader !== 'function') return;
    const suffix = suffixOf(throttler.name);
    const read = (field: string) =>
      res.getHeader(`${this.headerPrefix}-${field}${suffix}`) as unknown;
    const limit = read('Limit');
    const remaining = read('Remaining');
    const reset = read('Reset');
    if (limit === undefined || remaining === undefined || reset === undefined) return;
    const name = throttler.name ?? 'default';
    const windowSeconds = Math.ceil(ttl / 1000);
    this.setResponseHeader(res, 'RateLimit-Policy', `"${name}";q=${limit};w=${windowSeconds}`);
    this.setResponseHeader(res, 'RateLimit', `"${name}";r=${remaining};t=${reset}`);
  }
}
