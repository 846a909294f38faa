import { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ThrottlerException, ThrottlerStorageService } from '@nestjs/throttler';
import { VERIFIED_KEY } from './api-key.guard';
import { WriteThrottlerGuard } from './write-throttler.guard';

class Handler {
  create() {
    return undefined;
  }
}

function request(key?: string) {
  const headers = new Map<string, string | number>();
  const req: Record<string | symbol, unknown> = {
    ip: '10.0.0.1',
    headers: key === undefined ? {} : { 'x-api-key': key },
  };
  if (key !== undefined) req[VERIFIED_KEY] = true;
  const res = {
    header: (name: string, value: string | number) => headers.set(name.toLowerCase(), value),
    getHeader: (name: string) => headers.get(name.toLowerCase()),
  };
  const context = {
    getHandler: () => Handler.prototype.create,
    getClass: () => Handler,
    switchToHttp: () => ({ getRequest: () => req, getResponse: () => res }),
  } as unknown as ExecutionContext;
  return { context, headers };
}

describe('WriteThrottlerGuard', () => {
  let guard: WriteThrottlerGuard;
  let storage: ThrottlerStorageService;

  beforeEach(async () => {
    storage = new ThrottlerStorageService();
    guard = new WriteThrottlerGuard(
      { throttlers: [{ name: 'default', ttl: 60_000, limit: 2 }] },
      storage,
      new Reflector(),
    );
    await guard.onModuleInit();
  });
  afterEach(() => storage.onApplicationShutdown());

  it('sends the X-RateLimit trio and the IETF fields on every allowed request', async () => {
    const { context, headers } = request('k1');
    await expect(guard.canActivate(context)).resolves.toBe(true);
    expect(headers.get('x-ratelimit-limit')).toBe(2);
    expect(headers.get('x-ratelimit-remaining')).toBe(1);
    expect(headers.get('x-ratelimit-reset')).toBe(60);
    expect(headers.get('ratelimit-policy')).toBe('"default";q=2;w=60');
    expect(headers.get('ratelimit')).toBe('"default";r=1;t=60');
  });

  it('adds the trio (0 remaining) and the IETF fields to the 429 beside Retry-After', async () => {
    await guard.canActivate(request('k1').context);
    await guard.canActivate(request('k1').context);
    const { context, headers } = request('k1');
    await expect(guard.canActivate(context)).rejects.toBeInstanceOf(ThrottlerException);
    const retryAfter = Number(headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(headers.get('x-ratelimit-limit')).toBe(2);
    expect(headers.get('x-ratelimit-remaining')).toBe(0);
    expect(Number(headers.get('x-ratelimit-reset'))).toBe(retryAfter);
    expect(headers.get('ratelimit')).toBe(`"default";r=0;t=${retryAfter}`);
  });

  it('counts per verified key, anonymous requests per address', async () => {
    await guard.canActivate(request('k1').context);
    await guard.canActivate(request('k1').context);
    await expect(guard.canActivate(request('k2').context)).resolves.toBe(true);
    await expect(guard.canActivate(request().context)).resolves.toBe(true);
  });
});
