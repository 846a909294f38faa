import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';

export const API_KEY_HEADER = 'x-api-key';
export const API_KEY_SCHEME = 'api-key';
const ACCESS = 'api-key-access';
/** Set on a request whose X-API-Key matched a configured key (the rate limit counts per key then). */
export const VERIFIED_KEY = Symbol('verifiedApiKey');

/** Marks a route as a read: it needs a key only with READ_API_KEYS_REQUIRED=true. */
export const ReadAccess = () => SetMetadata(ACCESS, 'read');

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * When API_KEYS is set, writes and the DLQ need an X-API-Key header holding one of them (reads
 * too with READ_API_KEYS_REQUIRED). Keys are compared as SHA-256 digests with timingSafeEqual,
 * every key every time, so timing tells nothing about a key; no key is ever logged.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: Buffer[];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly reflector: Reflector,
  ) {
    this.keys = config.apiKeys.map(digest);
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.keys.length === 0) return true;
    const access = this.reflector.getAllAndOverride<string>(ACCESS, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (access === 'read' && !this.config.readApiKeysRequired) return true;
    const header = context.switchToHttp().getRequest<Request>().headers[API_KEY_HEADER];
    const given = digest(typeof header === 'string' ? header : '');
    let match = false;
    for (const key of this.keys) match = timingSafeEqual(key, given) || match;
    if (!match) throw new UnauthorizedException('a valid X-API-Key header is required');
    (context.switchToHttp().getRequest<Request>() as Request & { [VERIFIED_KEY]?: boolean })[
      VERIFIED_KEY
    ] = true;
    return true;
  }
}
