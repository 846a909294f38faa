import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { createKinesisClient } from '../src/infra/aws/aws-clients';
import { FreezableProxy, startFreezableProxy } from './support/freezable-proxy';
import { allFinal, compareWithOracle, dataset, putOnStream, Sent } from './support/oracle';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';
import { injectWireFaults, tablesOf, WireFault } from './support/wire-faults';

/**
 * SPEC §3 "Outages stall, never discard", against the real emulators: a table made unavailable
 * (the app's own client's HTTP handler answers every request that touches it with an error, or
 * delays and fails it), or a DynamoDB or Kinesis that stops answering (a TCP proxy that holds
 * every byte). Each table outage outlasts the old retry budget (10 tries, then every record dead-lettered as processing_error) three
 * times over: at least 30 failed calls, 12 s, and more than 10 failed tries on every shard, with
 * the back-off capped at 300 ms. Meanwhile the shards report themselves stalled; afterwards every
 * record is read once, every window equals the oracle and nothing is in the DLQ.
 */

const BASE = Date.UTC(2026, 0, 7, 10, 0, 0);
const SIZES: [string, number][] = [
  ['1m', 60_000],
  ['5m', 300_000],
];
/** The old code's budget: 10 tries (about 11–23 s of back-off), then the DLQ. */
const OLD_BUDGET_ATTEMPTS = 10;
const MIN_FAILED_CALLS = 3 * OLD_BUDGET_ATTEMPTS;
const MIN_OUTAGE_MS = 12_000;
const STALL_UNREADY_MS = 3000;
/** Generous: other test files may load the same 2 cores. */
const DATA_TIMEOUT_MS = 90_000;

const env = (overrides: Record<string, string> = {}) =>
  isolatedEnv({
    KINESIS_SHARD_COUNT: '2',
    LEASE_FAILOVER_MS: '3000',
    CONSUMER_STALL_UNREADY_MS: String(STALL_UNREADY_MS),
    CONSUMER_BACKOFF_MAX_MS: '300',
    AGGREGATION_WINDOWS: '1m,5m',
    AGGREGATION_OUT_OF_ORDERNESS_MS: '1000',
    AGGREGATION_ALLOWED_LATENESS_MS: '2000',
    AGGREGATION_IDLE_MS: '1000',
    AGGREGATION_FLUSH_MS: '200',
    ...overrides,
  });

/**
 * Six cities, alternately on one shard and the other (Kinesis maps MD5(partition key) onto the
 * hash key ranges, split at 2^127), so that every held shard has records to stall on, and each
 * shard's last record is within seconds of the end of the data (its last windows turn final
 * after a few seconds of idleness instead of half a minute).
 */
function citiesOnBothShards(prefix: string): string[] {
  const low: string[] = [];
  const high: string[] = [];
  for (let i = 0; low.length < 3 || high.length < 3; i++) {
    const city = `${prefix}-${i}`;
    const side = createHash('md5').update(city).digest()[0] < 0x80 ? low : high;
    if (side.length < 3) side.push(city);
  }
  return [low[0], high[0], low[1], high[1], low[2], high[2]];
}

/** 180 measurements, 30 per city (one page of `latest`), over the 10 minutes after BASE. */
const recordsFor = (prefix: string) =>
  dataset(180, { base: BASE, spanMs: 603_000, cities: citiesOnBothShards(prefix) });
const FIRST = 120;
/** Sent during the outage: the rest, and duplicates of records already sent. */
const duringOutage = (sent: Sent[]) => [...sent.slice(FIRST), ...sent.slice(0, 40)];

interface ShardHealth {
  state: string;
  stalled_ms?: number;
  stalled_on?: string;
  attempts?: number;
  last_error?: string;
}
interface ConsumerHealth {
  status: 'up' | 'down';
  leases_held: number;
  owner: string;
  shards: Record<string, ShardHealth>;
}
interface Readiness {
  /** The HTTP status of GET /health/ready, and how long it took to answer. */
  status: number;
  ms: number;
  /** The consumer's part of readiness (see `readiness`). */
  consumer: ConsumerHealth;
  /** The tables' part: table name → TableStatus, or the name of the error. */
  tables: Record<string, string>;
}

type HealthBody = { details?: { consumer?: ConsumerHealth; tables?: Record<string, string> } };

/** GET /health/ready: terminus' body, with its details on a 503 too. */
async function readiness(t: TestApp): Promise<Readiness> {
  const started = Date.now();
  const res = await t.http.get('/health/ready');
  const ms = Date.now() - started;
  const details = (res.body as HealthBody).details;
  if (!details?.consumer || !details.tables)
    throw new Error(`readiness without details: ${res.status} ${JSON.stringify(res.body)}`);
  return { status: res.status, ms, consumer: details.consumer, tables: details.tables };
}

/** Both leases held and both pollers reading: the outage starts on a running consumer. */
async function bothShardsPolling(t: TestApp): Promise<ConsumerHealth> {
  return eventually(
    async () => {
      const { status, consumer } = await readiness(t);
      const shards = Object.values(consumer.shards);
      return status === 200 &&
        consumer.leases_held === 2 &&
        shards.every((s) => s.state === 'polling')
        ? consumer
        : undefined;
    },
    'both leases held and polling',
    DATA_TIMEOUT_MS,
  );
}

/** The entries of the DLQ (the first page is enough: it must stay empty). */
type DlqProbe = () => Promise<unknown[]>;
const dlqOf =
  (t: TestApp): DlqProbe =>
  async () =>
    (await t.http.get('/dlq?limit=50').expect(200)).body.items as unknown[];

/**
 * `eventually`, that also reads the DLQ on every round and fails at once, showing the entries,
 * when anything was dead-lettered meanwhile (as code that gives up after a retry budget does).
 */
async function eventuallyNothingDeadLettered<T>(
  dlq: DlqProbe,
  probe: () => Promise<T | undefined>,
  what: string,
): Promise<T> {
  const outcome = await eventually<{ letters?: unknown[]; value?: T }>(
    async () => {
      const letters = await dlq();
      if (letters.length > 0) return { letters };
      const value = await probe();
      return value === undefined ? undefined : { value };
    },
    what,
    DATA_TIMEOUT_MS,
  );
  expect(outcome.letters ?? []).toEqual([]);
  return outcome.value!;
}

/**
 * Readiness once it is 503 with the consumer itself down: every shard stalled for longer than
 * CONSUMER_STALL_UNREADY_MS, as `matches` says; nothing dead-lettered meanwhile. The last answer
 * is in the error otherwise.
 */
async function stalledReadiness(
  t: TestApp,
  matches: (shard: ShardHealth) => boolean,
  what: string,
  options: { dlq?: DlqProbe; until?: () => boolean; each?: (r: Readiness) => void } = {},
): Promise<Readiness> {
  let last: Readiness | undefined;
  return eventuallyNothingDeadLettered(
    options.dlq ?? dlqOf(t),
    async () => {
      const r = (last = await readiness(t));
      options.each?.(r);
      const shards = Object.values(r.consumer.shards);
      return r.status === 503 &&
        r.consumer.status === 'down' &&
        shards.length === 2 &&
        shards.every(
          (s) => s.state === 'stalled' && (s.stalled_ms ?? 0) > STALL_UNREADY_MS && matches(s),
        ) &&
        (options.until?.() ?? true)
        ? r
        : undefined;
    },
    what,
  ).catch((error: Error) => {
    throw Object.assign(error, {
      message: `${error.message}; last readiness: ${JSON.stringify(last)}`,
    });
  });
}

async function metric(t: TestApp, name: string, labels = ''): Promise<number> {
  const text = (await t.http.get('/metrics').expect(200)).text;
  const escaped = `${name}${labels}`.replace(/[{}]/g, (c) => `\\${c}`);
  const match = new RegExp(`^${escaped} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}
const retries = (t: TestApp, operation: string) =>
  metric(t, 'aq_consumer_retries_total', `{operation="${operation}"}`);

async function allRetries(t: TestApp): Promise<number> {
  const text = (await t.http.get('/metrics').expect(200)).text;
  return [...text.matchAll(/^aq_consumer_retries_total\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

/** The metrics show it too: every shard's aq_shard_stalled_seconds past the readiness limit. */
async function expectStalledInMetrics(t: TestApp, r: Readiness): Promise<void> {
  const shards = Object.keys(r.consumer.shards);
  expect(shards).toHaveLength(2);
  await eventually(
    async () => {
      for (const shard of shards) {
        const stalled = await metric(t, 'aq_shard_stalled_seconds', `{shard="${shard}"}`);
        if (stalled <= STALL_UNREADY_MS / 1000) return undefined;
      }
      return true;
    },
    'aq_shard_stalled_seconds of every shard past the readiness limit',
    10_000,
  );
}

async function expectDlqEmpty(t: TestApp): Promise<void> {
  const res = await t.http.get('/dlq?limit=50').expect(200);
  expect(res.body.items).toEqual([]);
}

/** Every distinct record readable once through the API: same timestamps, one message id each. */
async function expectLatestOnce(t: TestApp, sent: Sent[]): Promise<void> {
  for (const city of new Set(sent.map((r) => r.city_id))) {
    const want = sent
      .filter((r) => r.city_id === city)
      .map((r) => r.timestamp)
      .sort();
    const res = await t.http.get(`/cities/${city}/latest?limit=100`).expect(200);
    const items = res.body.items as { timestamp: string; message_id: string }[];
    expect(items.map((m) => m.timestamp).sort()).toEqual(want);
    expect(new Set(items.map((m) => m.message_id)).size).toBe(want.length);
  }
}

/** Waits for the windows, then checks everything the contract promises after an outage. */
async function expectExactAfterRecovery(t: TestApp, sent: Sent[]): Promise<void> {
  const { got, want } = await eventually(
    () => allFinal(t, sent, SIZES, BASE),
    'every window final after the outage',
    DATA_TIMEOUT_MS,
  );
  compareWithOracle(got, want);
  await waitUntilConsumed(t);
  await expectLatestOnce(t, sent);
  await expectDlqEmpty(t);
  await eventually(
    async () => ((await t.http.get('/health/ready')).status === 200 ? true : undefined),
    'ready again',
    30_000,
  );
}

interface Outage {
  /** Requests failed so far, of one operation (e.g. BatchWriteItem) or of all. */
  failures(operation?: string): number;
  /** When the first request failed. */
  firstFailureAt?: number;
  end(): void;
}

/**
 * Makes `table` unavailable to the app: every request that touches it (the consumer's writes,
 * the lease calls, the API's reads and readiness' DescribeTable alike, through the SDK or sent
 * directly) is answered with `fault`, after `fault.hangMs` when given. Injected at the client's
 * HTTP handler, after the SDK's own retries: each try of a call is one failure here.
 */
function tableOutage(t: TestApp, table: string, fault: WireFault): Outage {
  const counts = new Map<string, number>();
  const end = injectWireFaults(t.dynamoDb, ({ operation, input }) => {
    if (!tablesOf(input).includes(table)) return undefined;
    outage.firstFailureAt ??= Date.now();
    counts.set(operation, (counts.get(operation) ?? 0) + 1);
    return fault;
  });
  const outage: Outage = {
    failures: (operation) =>
      operation ? (counts.get(operation) ?? 0) : [...counts.values()].reduce((a, b) => a + b, 0),
    end,
  };
  return outage;
}

/**
 * Keeps the outage on until it has outlasted the old retry budget three times over: at least 30
 * failed `call` requests, 12 s since the first failure, and more than 10 failed tries on every
 * shard as the consumer itself counts them, with readiness still 503.
 */
async function outlastOldBudget(t: TestApp, outage: Outage, call: string): Promise<Readiness> {
  return eventuallyNothingDeadLettered(
    dlqOf(t),
    async () => {
      if (outage.failures(call) < MIN_FAILED_CALLS) return undefined;
      if (Date.now() - outage.firstFailureAt! < MIN_OUTAGE_MS) return undefined;
      const r = await readiness(t);
      const shards = Object.values(r.consumer.shards);
      return r.status === 503 &&
        shards.length === 2 &&
        shards.every((s) => s.state === 'stalled' && (s.attempts ?? 0) > OLD_BUDGET_ATTEMPTS)
        ? r
        : undefined;
    },
    `${MIN_FAILED_CALLS} failed ${call} requests over ${MIN_OUTAGE_MS} ms`,
  );
}

const serviceUnavailable: WireFault = {
  status: 503,
  type: 'ServiceUnavailable',
  message: 'injected: the table is unavailable',
};
const throttled: WireFault = {
  status: 400,
  type: 'ProvisionedThroughputExceededException',
  message: 'injected: the provisioned throughput of the table was exceeded',
};
const timedOut: WireFault = {
  error: () =>
    Object.assign(new Error('injected: the request socket timed out'), { name: 'TimeoutError' }),
  hangMs: 500,
};

describe('outages stall, never discard (SPEC §3; real emulators)', () => {
  it.each([
    {
      title:
        'realtime table unavailable (ServiceUnavailable): the shards stall on the speed-layer write, then store every record once',
      prefix: 'out-rt',
      table: (t: TestApp) => t.config.tables.realtime,
      fault: serviceUnavailable,
      operation: 'speed-layer write',
      error: /^ServiceUnavailable/,
      call: 'BatchWriteItem',
    },
    {
      // Every request touching the table hangs half a second, then fails as a timed-out request.
      title:
        'aggregates table hanging, then timing out: the shards stall on the commit of their window results, then every window equals the oracle',
      prefix: 'out-agg',
      table: (t: TestApp) => t.config.tables.aggregates,
      fault: timedOut,
      operation: 'commit',
      error: /^TimeoutError/,
      call: 'TransactWriteItems',
    },
  ])(
    '$title',
    async ({ prefix, table, fault, operation, error, call }) => {
      const t = await startApp(env());
      const sent = recordsFor(prefix);
      let outage: Outage | undefined;
      try {
        await bothShardsPolling(t);
        outage = tableOutage(t, table(t), fault);
        await putOnStream(t, sent.slice(0, FIRST));

        const stalled = await stalledReadiness(
          t,
          (s) => s.stalled_on === operation && error.test(s.last_error!),
          `every shard stalled on the ${operation}`,
        );
        await expectStalledInMetrics(t, stalled);
        const retriesAtStall = await retries(t, operation);
        expect(retriesAtStall).toBeGreaterThan(0);
        await putOnStream(t, duringOutage(sent));

        await outlastOldBudget(t, outage, call);
        await expectDlqEmpty(t);
        expect(await retries(t, operation)).toBeGreaterThan(retriesAtStall);
        outage.end();

        await expectExactAfterRecovery(t, sent);
      } finally {
        outage?.end();
        await t.close();
      }
    },
    180_000,
  );

  it('lease table throttled (ProvisionedThroughputExceededException on every call): renewals and commits fail, nobody takes the leases, and the same owner resumes exactly', async () => {
    const t = await startApp(env());
    const sent = recordsFor('out-lease');
    let outage: Outage | undefined;
    try {
      const running = await bothShardsPolling(t);
      const leasesBefore = await leases(t);
      expect(Object.values(leasesBefore).map((l) => l.owner)).toEqual([
        running.owner,
        running.owner,
      ]);
      const renewalFailuresBefore = await metric(t, 'aq_lease_renewal_failures_total');
      outage = tableOutage(t, t.config.tables.leases, throttled);
      await putOnStream(t, sent.slice(0, FIRST));

      // The records are stored, but no checkpoint can be written: every shard stalls on the
      // commit. Readiness is 503 on two counts: the consumer (every shard stalled), and the
      // tables check, since the lease table is one of the tables it describes.
      const stalled = await stalledReadiness(
        t,
        (s) =>
          s.stalled_on === 'commit' &&
          /^ProvisionedThroughputExceededException/.test(s.last_error!),
        'every shard stalled on the commit',
      );
      // The SDK retries a throttled DescribeTable after a back-off, which readiness' 2 s deadline
      // may cut short: the table is down either way.
      expect(stalled.tables).toMatchObject({
        status: 'down',
        [t.config.tables.leases]: expect.stringMatching(
          /^(ProvisionedThroughputExceededException|AbortError)$/,
        ),
      });
      await expectStalledInMetrics(t, stalled);
      const retriesAtStall = await retries(t, 'commit');
      expect(retriesAtStall).toBeGreaterThan(0);
      await putOnStream(t, duringOutage(sent));

      const last = await outlastOldBudget(t, outage, 'TransactWriteItems');
      // A single instance: nobody took the leases; this one still holds both, unrenewed.
      expect(last.consumer.leases_held).toBe(2);
      expect(outage.failures('BatchExecuteStatement')).toBeGreaterThan(0); // the renewals
      expect(await metric(t, 'aq_lease_renewal_failures_total')).toBeGreaterThan(
        renewalFailuresBefore,
      );
      await expectDlqEmpty(t);
      expect(await retries(t, 'commit')).toBeGreaterThan(retriesAtStall);
      outage.end();

      await expectExactAfterRecovery(t, sent);
      // The same instance carried on: owner and epoch unchanged.
      const leasesAfter = await leases(t);
      for (const [shard, l] of Object.entries(leasesBefore))
        expect(leasesAfter[shard]).toMatchObject({ owner: l.owner, epoch: l.epoch });
    } finally {
      outage?.end();
      await t.close();
    }
  }, 180_000);

  it('DynamoDB frozen (a proxy holds every byte, like a SIGSTOPped server): calls time out instead of hanging, the shards stall on TimeoutError, and after the thaw the data is exact', async () => {
    const proxy: FreezableProxy = await startFreezableProxy(process.env.E2E_DYNAMODB_ENDPOINT!);
    // The test reads the DLQ straight from the emulator while the app's DynamoDB is frozen.
    const direct = DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: process.env.E2E_DYNAMODB_ENDPOINT, region: 'us-east-1' }),
    );
    let t: TestApp | undefined;
    try {
      // Provisioning goes through the proxy too, before it freezes.
      t = await startApp(env({ AWS_ENDPOINT_URL_DYNAMODB: proxy.url }));
      const app = t;
      const sent = recordsFor('out-frozen');
      const dlqDirect: DlqProbe = async () =>
        (await direct.send(new ScanCommand({ TableName: app.config.tables.dlq, Limit: 50 })))
          .Items ?? [];
      await bothShardsPolling(app);

      proxy.freeze();
      const frozenAt = Date.now();
      await putOnStream(app, [...sent, ...sent.slice(0, 40)]);

      // Every DynamoDB call hangs until its request timeout (5 s; the SDK tries 3 times), then
      // fails; readiness keeps answering, every time within seconds (its DescribeTable calls
      // have a 2 s deadline).
      let slowest = 0;
      const stalled = await stalledReadiness(
        app,
        (s) => /TimeoutError/.test(s.last_error ?? ''),
        'every shard stalled on a TimeoutError while DynamoDB is frozen',
        {
          dlq: dlqDirect,
          until: () => Date.now() - frozenAt >= 20_000,
          each: (r) => (slowest = Math.max(slowest, r.ms)),
        },
      );
      expect(slowest).toBeLessThan(5000);
      // The tables do not answer DescribeTable either.
      expect(stalled.tables.status).toBe('down');
      await expectStalledInMetrics(app, stalled);
      expect(await allRetries(app)).toBeGreaterThan(0);
      expect(await dlqDirect()).toEqual([]);

      proxy.thaw();
      await expectExactAfterRecovery(app, sent);
    } finally {
      proxy.thaw();
      await t?.close();
      await proxy.close();
      direct.destroy();
    }
  }, 180_000);

  it('Kinesis frozen (a proxy holds every byte): reads time out instead of hanging, the shards stall on TimeoutError, and after the thaw the data is exact', async () => {
    // GetRecords is sent without the SDK's command stack (direct-call.ts): it must time
    // out on the client's handler as the SDK's own calls do.
    const proxy: FreezableProxy = await startFreezableProxy(process.env.E2E_KINESIS_ENDPOINT!);
    // The test puts its records straight on the emulator while the app's Kinesis is frozen.
    const direct = createKinesisClient({
      region: 'us-east-1',
      kinesis: process.env.E2E_KINESIS_ENDPOINT,
      credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' },
    });
    let t: TestApp | undefined;
    try {
      t = await startApp(env({ AWS_ENDPOINT_URL_KINESIS: proxy.url }));
      const app = t;
      const sent = recordsFor('out-kfrozen');
      await bothShardsPolling(app);

      proxy.freeze();
      await putOnStream({ ...app, kinesis: direct }, [...sent, ...sent.slice(0, 40)]);

      const stalled = await stalledReadiness(
        app,
        (s) => s.stalled_on === 'GetRecords' && /TimeoutError/.test(s.last_error ?? ''),
        'every shard stalled on a GetRecords TimeoutError while Kinesis is frozen',
      );
      await expectStalledInMetrics(app, stalled);
      expect(await retries(app, 'GetRecords')).toBeGreaterThan(0);

      proxy.thaw();
      await expectExactAfterRecovery(app, sent);
    } finally {
      proxy.thaw();
      await t?.close();
      await proxy.close();
      direct.destroy();
    }
  }, 180_000);
});

/** Owner and epoch of each shard lease, read from the table. */
async function leases(t: TestApp): Promise<Record<string, { owner: string; epoch: number }>> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.leases, ConsistentRead: true }),
  );
  return Object.fromEntries(
    Items.filter((i) => String(i.leaseKey).startsWith('shardId-')).map((i) => [
      i.leaseKey as string,
      { owner: i.leaseOwner as string, epoch: i.leaseEpoch as number },
    ]),
  );
}
