import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { AppConfig } from '../config/app.config';
import { createDocumentClient, createDynamoDbClient } from '../infra/aws/aws-clients';
import { Lease, LeaseLostError, LeaseRepository } from './lease.repository';
import { until } from './testing/until';

interface Statement {
  Statement: string;
  Parameters: { S?: string; N?: string; NULL?: boolean }[];
}

/**
 * A stand-in for DynamoDB's BatchExecuteStatement: records each call's statements and answers
 * each statement with `answer` (undefined: renewed), one answer short with `held.short`, or
 * holds the call with `held.calls` (counting in `held.closed` the held calls the client ended).
 */
async function endpoint(answer: (s: Statement) => { Code: string; Message?: string } | undefined) {
  const calls: Statement[][] = [];
  const held = { calls: false, short: false, closed: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { Statements } = JSON.parse(Buffer.concat(chunks).toString()) as {
        Statements: Statement[];
      };
      calls.push(Statements);
      if (held.calls) {
        res.on('close', () => held.closed++);
        return;
      }
      const Responses = Statements.map((s) => {
        const refused = answer(s);
        return refused ? { Error: refused } : {};
      });
      if (held.short) Responses.pop();
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ Responses }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return { url, calls, held, close };
}

const lease = (n: number, owner = 'A', epoch = 3): Lease => ({
  leaseKey: `shardId-${String(n).padStart(12, '0')}`,
  leaseOwner: owner,
  leaseCounter: 10,
  leaseEpoch: epoch,
  parentShardIds: [],
  ownerSwitchesSinceCheckpoint: 0,
});

describe('LeaseRepository.renew (a tick’s renewals in one BatchExecuteStatement)', () => {
  let db: DynamoDBClient;
  let server: Awaited<ReturnType<typeof endpoint>>;
  afterEach(async () => {
    db?.destroy();
    await server?.close();
  });

  function repository(url: string): LeaseRepository {
    db = createDynamoDbClient({
      region: 'eu-west-1',
      dynamoDb: url,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    const config = { tables: { leases: 'leases', state: 'state' } } as unknown as AppConfig;
    return new LeaseRepository(createDocumentClient(db), config);
  }

  it('sends the renewals of one tick together, 25 to a call, each fenced by its own key, owner and epoch', async () => {
    server = await endpoint(() => undefined);
    const repo = repository(server.url);
    const leases = Array.from({ length: 30 }, (_, i) => lease(i, 'A', i));
    await Promise.all(leases.map((l) => repo.renew(l)));
    expect(server.calls.map((c) => c.length)).toEqual([25, 5]);
    const statements = server.calls.flat();
    expect(statements[0].Statement).toBe(
      'UPDATE "leases" SET "leaseCounter" = "leaseCounter" + 1 ' +
        'WHERE "leaseKey" = ? AND "leaseOwner" = ? AND "leaseEpoch" = ?',
    );
    expect(statements.map((s) => s.Parameters)).toEqual(
      leases.map((l) => [{ S: l.leaseKey }, { S: 'A' }, { N: String(l.leaseEpoch) }]),
    );
    expect(leases.map((l) => l.leaseCounter)).toEqual(leases.map(() => 11));
  });

  it('reads owner and epoch when the renewal is asked for, not when the call goes out', async () => {
    server = await endpoint(() => undefined);
    const repo = repository(server.url);
    const l = lease(1, 'A', 3);
    const renewed = repo.renew(l);
    // Changed within the same tick, before the batch is sent (a release, a takeover).
    l.leaseOwner = null;
    l.leaseEpoch = 4;
    await renewed;
    expect(server.calls[0][0].Parameters).toEqual([{ S: l.leaseKey }, { S: 'A' }, { N: '3' }]);
  });

  it('answers each renewal on its own: a failed condition is a lost lease, any other refusal a failed renewal, never lost and never renewed', async () => {
    const refusals: Record<string, string> = {
      '1': 'ConditionalCheckFailed',
      '2': 'ThrottlingError',
      '3': 'InternalServerError',
      '4': 'TransactionConflict',
      '5': 'ProvisionedThroughputExceeded',
    };
    server = await endpoint((s) => {
      const code = refusals[String(Number(s.Parameters[0].S!.slice('shardId-'.length)))];
      return code ? { Code: code, Message: `refused: ${code}` } : undefined;
    });
    const repo = repository(server.url);
    const leases = Array.from({ length: 7 }, (_, i) => lease(i));
    const results = await Promise.allSettled(leases.map((l) => repo.renew(l)));
    expect(server.calls).toHaveLength(1);
    const outcome = results.map((r) =>
      r.status === 'fulfilled' ? 'renewed' : (r.reason as Error).name,
    );
    expect(outcome).toEqual([
      'renewed',
      'LeaseLostError',
      'ThrottlingError',
      'InternalServerError',
      'TransactionConflict',
      'ProvisionedThroughputExceeded',
      'renewed',
    ]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(LeaseLostError);
    expect(leases.map((l) => l.leaseCounter)).toEqual([11, 10, 10, 10, 10, 10, 11]);
  });

  it('fails every renewal of a call whose answers do not match its statements', async () => {
    server = await endpoint(() => undefined);
    server.held.short = true;
    const repo = repository(server.url);
    const leases = [lease(1), lease(2)];
    const results = await Promise.allSettled(leases.map((l) => repo.renew(l)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).not.toBeInstanceOf(LeaseLostError);
    expect(leases.map((l) => l.leaseCounter)).toEqual([10, 10]);
  });

  it('ends a renewal at its own signal, and aborts the call only once all of its renewals are', async () => {
    server = await endpoint(() => undefined);
    server.held.calls = true;
    const repo = repository(server.url);
    const first = new AbortController();
    const second = new AbortController();
    const a = repo.renew(lease(1), first.signal);
    const b = repo.renew(lease(2), second.signal);
    let bSettled = false;
    void b.catch(() => (bSettled = true));
    await until(() => server.calls.length === 1, 'the call sent');

    first.abort(new Error('timed out'));
    await expect(a).rejects.toMatchObject({ name: 'AbortError' });
    // The other renewal of the call is still waiting for its answer.
    await new Promise((resolve) => setImmediate(resolve));
    expect(bSettled).toBe(false);

    expect(server.held.closed).toBe(0);

    second.abort(new Error('timed out'));
    await expect(b).rejects.toMatchObject({ name: 'AbortError' });
    await until(() => server.held.closed === 1, 'the call aborted');
    expect(server.calls).toHaveLength(1);
  });
});
