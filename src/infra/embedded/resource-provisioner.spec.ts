import { createServer, Server } from 'node:net';
import { isUnreachable, provisionResources } from './resource-provisioner';

const names = {
  stream: { name: 'unit-stream', shardCount: 1 },
  tables: {
    realtime: 'unit-rt',
    aggregates: 'unit-agg',
    dlq: 'unit-dlq',
    leases: 'unit-leases',
    state: 'unit-state',
  },
};

/** A port nothing listens on: bound, noted, closed. */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('provisionResources against endpoints that do not answer', () => {
  it('retries with back-off, logging each retry, and gives up after retryForMs', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    const log: string[] = [];
    const started = Date.now();
    const failure = await provisionResources(
      {
        region: 'us-east-1',
        kinesis: url,
        dynamoDb: url,
        credentials: { accessKeyId: 'unit', secretAccessKey: 'unit' },
      },
      names,
      { retryForMs: 1500, log: (m) => log.push(m) },
    ).catch((e: Error) => e);
    const elapsed = Date.now() - started;
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/provisioning gave up after \d+ attempts/);
    expect((failure as Error).message).toContain('ECONNREFUSED');
    expect(log.length).toBeGreaterThanOrEqual(2);
    expect(log[0]).toMatch(/provisioning attempt 1 failed.*ECONNREFUSED.*retrying in \d+ ms/);
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(10_000);
  });
});

describe('isUnreachable', () => {
  it.each([
    [{ code: 'ECONNREFUSED' }, true],
    [{ code: 'ENOTFOUND' }, true],
    [{ name: 'TimeoutError' }, true],
    [{ name: 'InternalFailure', $metadata: { httpStatusCode: 503 } }, true],
    [{ name: 'AggregateError', errors: [{ code: 'ECONNREFUSED' }] }, true],
    [{ name: 'ValidationException', $metadata: { httpStatusCode: 400 } }, false],
    [{ name: 'AccessDeniedException', $metadata: { httpStatusCode: 403 } }, false],
    [null, false],
  ])('%j → %s', (error, expected) => {
    expect(isUnreachable(error)).toBe(expected);
  });
});
