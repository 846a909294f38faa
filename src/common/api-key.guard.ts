import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import type { Request } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';

export const API_KEY_HEADER = 'x-api-key';
export const API_KEY_SCHEME = 'api-key';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * When API_KEYS is set, the X-API-Key header must hold one of them. Keys are compared as SHA-256
 * digests with timingSafeEqual, every key every time, so timing tells nothing about a key.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: Buffer[];

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.keys = config.apiKeys.map(digest);
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.keys.length === 0) return true;
    const header = context.switchToHttp().getRequest<Request>().headers[API_KEY_HEADER];
    const given = digest(typeof header === 'string' ? header : '');
    let match = false;
    for (const key of this.keys) match = timingSafeEqual(key, given) || match;
    if (!match) throw new UnauthorizedException('a valid X-API-Key header is required');
    return true;
  }
}
