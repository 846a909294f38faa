import { Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import { createHash } from 'node:crypto';
import { API_KEY_HEADER, VERIFIED_KEY } from './api-key.guard';

/**
 * Rate limits writes per verified API key (a digest of it, never the key), per client address
 * otherwise. Runs after ApiKeyGuard.
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
}
