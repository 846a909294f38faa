import { Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import { createHash } from 'node:crypto';
import { API_KEY_HEADER } from './api-key.guard';

/** Rate limits writes per API key (a digest of it, never the key), per client address without one. */
@Injectable()
export class WriteThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    const headers = req.headers as Record<string, string | undefined>;
    const key = headers[API_KEY_HEADER];
    if (typeof key === 'string' && key.length > 0) {
      return `key:${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
    }
    return `ip:${String(req.ip ?? 'unknown')}`;
  }
}
