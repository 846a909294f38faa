import { CoordinatorOptions, LeaseCoordinator, ShardInfo, Worker } from './lease-coordinator';
import {
  INSTANCE_PREFIX,
  InstanceHeartbeat,
  Lease,
  LeaseLostError,
  LeaseStore,
  SHARD_END,
} from './lease.repository';
import { Checkpointer, PollerStatus } from './shard-poller';

const FAILOVER_MS = 10_000;
const DISCOVERY_MS = 60_000;
const STEP_MS = 1_000;

const FOUR_SHARDS: ShardInfo[] = [0, 1, 2, 3].map((i) => ({
  shardId: `shardId-${i}`,
  parentShardIds: [],
}));

const copy = <T>(value: T): T => structuredClone(value);

/** Lets every already-settled promise chain (worker `done` handlers, releases) run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

/** A monotonic clock shared by every coordinator of a test. */
class FakeClock {
  t = 0;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    if (ms < this.t) throw new Error('the clock is monotonic');
    this.t = ms;
  }
}

/**
 * The lease table in memory, with the conditional-write semantics of LeaseRepository on DynamoDB.
 * Conditions use the values the caller sent (captured when the call starts, as the SDK serializes
 * them) and are evaluated when the write "lands" (after an optional gate).
 */
class FakeLeaseStore implements LeaseStore {
  readonly leases = new Map<string, Lease>();
  readonly instances = new Map<string, InstanceHeartbeat>();
  /** Every write that was applied, in order. */
  readonly applied: string[] = [];
  /** When set, the next checkpoint call waits for it before it lands. */
  checkpointGate?: Promise<void>;

  constructor(private readonly clock: FakeClock) {}

  async scan(): Promise<{ leases: Lease[]; instances: InstanceHeartbeat[] }> {
    return {
      leases: [...this.leases.values()].map(copy),
      instances: [...this.instances.values()].map(copy),
    };
  }

  async create(shardId: string, parentShardIds: string[]): Promise<void> {
    if (this.leases.has(shardId)) return;
    this.leases.set(shardId, {
      leaseKey: shardId,
      leaseOwner: null,
      leaseCounter: 0,
      parentShardIds: [...parentShardIds],
      ownerSwitchesSinceCheckpoint: 0,
    });
    this.applied.push(`create ${shardId}`);
  }

  async take(seen: Lease, owner: string): Promise<Lease | undefined> {
    const expectedCounter = seen.leaseCounter;
    await Promise.resolve();
    const stored = this.leases.get(seen.leaseKey);
    if (!stored || stored.leaseCounter !== expectedCounter) return undefined;
    if (stored.leaseOwner !== owner) stored.ownerSwitchesSinceCheckpoint += 1;
    stored.leaseOwner = owner;
    stored.leaseCounter += 1;
    this.applied.push(`take ${seen.leaseKey} by ${owner} -> ${stored.leaseCounter}`);
    return copy(stored);
  }

  async renew(lease: Lease): Promise<void> {
    const sent = { owner: lease.leaseOwner, counter: lease.leaseCounter };
    await Promise.resolve();
    const stored = this.owned(lease.leaseKey, sent);
    stored.leaseCounter += 1;
    lease.leaseCounter += 1;
    this.applied.push(`renew ${lease.leaseKey} -> ${stored.leaseCounter}`);
  }

  async checkpoint(lease: Lease, sequenceNumber: string): Promise<void> {
    const sent = { owner: lease.leaseOwner, counter: lease.leaseCounter };
    const gate = this.checkpointGate;
    this.checkpointGate = undefined;
    if (gate) await gate;
    else await Promise.resolve();
    const stored = this.owned(lease.leaseKey, sent);
    stored.checkpoint = sequenceNumber;
    stored.ownerSwitchesSinceCheckpoint = 0;
    lease.checkpoint = sequenceNumber;
    lease.ownerSwitchesSinceCheckpoint = 0;
    this.applied.push(
      `checkpoint ${lease.leaseKey} ${sequenceNumber} at counter ${stored.leaseCounter}`,
    );
  }

  async release(lease: Lease): Promise<void> {
    const sent = { owner: lease.leaseOwner, counter: lease.leaseCounter };
    await Promise.resolve();
    try {
      const stored = this.owned(lease.leaseKey, sent);
      stored.leaseOwner = null;
      stored.leaseCounter += 1;
      this.applied.push(`release ${lease.leaseKey} -> ${stored.leaseCounter}`);
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
    }
  }

  async heartbeat(owner: string, leasesHeld: number): Promise<void> {
    await Promise.resolve();
    const key = `${INSTANCE_PREFIX}${owner}`;
    const before = this.instances.get(key);
    this.instances.set(key, {
      leaseKey: key,
      owner,
      leaseCounter: (before?.leaseCounter ?? 0) + 1,
      leasesHeld,
      heartbeatAt: new Date(this.clock.t).toISOString(),
    });
  }

  async removeInstance(owner: string, leaseCounter?: number): Promise<void> {
    await Promise.resolve();
    const key = `${INSTANCE_PREFIX}${owner}`;
    const stored = this.instances.get(key);
    if (!stored) return;
    if (leaseCounter !== undefined && stored.leaseCounter !== leaseCounter) return;
    this.instances.delete(key);
    this.applied.push(`removeInstance ${owner}`);
  }

  /** Another instance takes the lease behind the coordinator's back. */
  forceTake(shardId: string, owner: string): void {
    const stored = this.leases.get(shardId)!;
    stored.leaseOwner = owner;
    stored.leaseCounter += 1;
    stored.ownerSwitchesSinceCheckpoint += 1;
  }

  ownerOf(shardId: string): string | null {
    return this.leases.get(shardId)!.leaseOwner;
  }

  counterOf(shardId: string): number {
    return this.leases.get(shardId)!.leaseCounter;
  }

  /** shardId → owner, sorted by shardId. */
  owners(): Record<string, string | null> {
    return Object.fromEntries(
      [...this.leases.values()]
        .sort((a, b) => a.leaseKey.localeCompare(b.leaseKey))
        .map((l) => [l.leaseKey, l.leaseOwner]),
    );
  }

  countOwnedBy(owner: string): number {
    return [...this.leases.values()].filter((l) => l.leaseOwner === owner).length;
  }

  private owned(shardId: string, sent: { owner: string | null; counter: number }): Lease {
    const stored = this.leases.get(shardId);
    if (!stored || stored.leaseOwner !== sent.owner || stored.leaseCounter !== sent.counter) {
      throw new LeaseLostError(shardId);
    }
    return stored;
  }
}

/** A shard poller stand-in: `done` resolves on `stop()` or `finish()`. */
class FakeWorker implements Worker {
  readonly done: Promise<void>;
  stopped = false;
  finished = false;
  private resolveDone!: () => void;

  constructor(
    readonly lease: Lease,
    readonly checkpointer: Checkpointer,
  ) {
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  get shardId(): string {
    return this.lease.leaseKey;
  }

  stop(): void {
    this.stopped = true;
    this.resolveDone();
  }

  /** The poller returns by itself (shard ended, or it failed). */
  finish(): void {
    this.finished = true;
    this.resolveDone();
  }

  get running(): boolean {
    return !this.stopped && !this.finished;
  }

  status(): PollerStatus {
    return {
      shardId: this.lease.leaseKey,
      state: this.stopped ? 'stopped' : this.finished ? 'ended' : 'polling',
      checkpoint: this.lease.checkpoint,
    };
  }
}

interface Instance {
  owner: string;
  coordinator: LeaseCoordinator;
  workers: FakeWorker[];
  warnings: string[];
  listShards: jest.Mock<Promise<ShardInfo[]>, []>;
  /** The running workers, by shard. */
  running(): string[];
  /** What status() reports as held. */
  held(): string[];
  workersFor(shardId: string): FakeWorker[];
}

const instance = (
  store: FakeLeaseStore,
  clock: FakeClock,
  owner: string,
  shards: ShardInfo[],
): Instance => {
  const workers: FakeWorker[] = [];
  const warnings: string[] = [];
  const listShards = jest.fn(async () => copy(shards));
  const options: CoordinatorOptions = {
    owner,
    failoverMs: FAILOVER_MS,
    discoveryIntervalMs: DISCOVERY_MS,
    listShards,
    startWorker: (lease, checkpointer) => {
      const worker = new FakeWorker(lease, checkpointer);
      workers.push(worker);
      return worker;
    },
    log: { log: () => undefined, warn: (m) => warnings.push(m) },
    now: clock.now,
  };
  const coordinator = new LeaseCoordinator(store, options);
  return {
    owner,
    coordinator,
    workers,
    warnings,
    listShards,
    running: () =>
      workers
        .filter((w) => w.running)
        .map((w) => w.shardId)
        .sort(),
    held: () =>
      coordinator
        .status()
        .held.map((s) => s.shardId)
        .sort(),
    workersFor: (shardId) => workers.filter((w) => w.shardId === shardId),
  };
};

const ALL = ['shardId-0', 'shardId-1', 'shardId-2', 'shardId-3'];

describe('LeaseCoordinator', () => {
  let clock: FakeClock;
  let store: FakeLeaseStore;

  beforeEach(() => {
    clock = new FakeClock();
    store = new FakeLeaseStore(clock);
  });

  it('a single instance takes every discovered lease in one tick and starts one worker per shard', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);

    await a.coordinator.tick();

    expect(a.listShards).toHaveBeenCalledTimes(1);
    expect(store.owners()).toEqual({
      'shardId-0': 'A',
      'shardId-1': 'A',
      'shardId-2': 'A',
      'shardId-3': 'A',
    });
    for (const shardId of ALL) expect(store.counterOf(shardId)).toBe(1);
    expect(a.workers.map((w) => w.shardId).sort()).toEqual(ALL);
    expect(a.workers.every((w) => w.lease.leaseOwner === 'A' && w.lease.leaseCounter === 1)).toBe(
      true,
    );
    expect(a.held()).toEqual(ALL);
    expect(store.instances.get('instance#A')).toMatchObject({ owner: 'A', leaseCounter: 1 });
  });

  it('two instances on four shards balance to two leases each, one steal per tick, then stay stable', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);

    await a.coordinator.tick();
    expect(store.countOwnedBy('A')).toBe(4);

    clock.advance(STEP_MS);
    await b.coordinator.tick();
    expect(store.countOwnedBy('B')).toBe(1);
    expect(b.held()).toHaveLength(1);

    clock.advance(STEP_MS);
    await a.coordinator.tick();
    // A learns of the steal through its failed renewal and stops that worker.
    expect(a.held()).toHaveLength(3);
    expect(a.running()).toHaveLength(3);

    clock.advance(STEP_MS);
    await b.coordinator.tick();
    expect(store.countOwnedBy('B')).toBe(2);
    expect(store.countOwnedBy('A')).toBe(2);

    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(a.held()).toHaveLength(2);
    expect(b.held()).toHaveLength(2);

    const owners = store.owners();
    const started = a.workers.length + b.workers.length;
    for (let round = 0; round < 5; round++) {
      clock.advance(STEP_MS);
      await a.coordinator.tick();
      clock.advance(STEP_MS);
      await b.coordinator.tick();
    }
    expect(store.owners()).toEqual(owners);
    expect(a.workers.length + b.workers.length).toBe(started);
    expect(a.held()).toHaveLength(2);
    expect(b.held()).toHaveLength(2);
    // Every shard is read by exactly one running worker.
    expect([...a.running(), ...b.running()].sort()).toEqual(ALL);
    expect(a.running()).toEqual(a.held());
    expect(b.running()).toEqual(b.held());
  });

  it('an uneven split is stable: on three shards two instances settle at 2/1 and do not trade leases back and forth', async () => {
    const three = FOUR_SHARDS.slice(0, 3);
    const a = instance(store, clock, 'A', three);
    const b = instance(store, clock, 'B', three);
    await a.coordinator.tick();
    clock.advance(STEP_MS);
    await b.coordinator.tick();
    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(store.countOwnedBy('A')).toBe(2);
    expect(store.countOwnedBy('B')).toBe(1);

    const owners = store.owners();
    for (let round = 0; round < 5; round++) {
      clock.advance(STEP_MS);
      await b.coordinator.tick();
      clock.advance(STEP_MS);
      await a.coordinator.tick();
    }
    expect(store.owners()).toEqual(owners);
    expect(a.workers).toHaveLength(3);
    expect(b.workers).toHaveLength(1);
    expect([...a.running(), ...b.running()].sort()).toEqual([
      'shardId-0',
      'shardId-1',
      'shardId-2',
    ]);
  });

  it('failover: the leases of an instance that went silent are taken once failoverMs of unchanged observation has passed, not before', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.coordinator.tick();
    expect(store.countOwnedBy('A')).toBe(4);
    // A is SIGKILLed: it never ticks again and never releases anything.

    clock.set(5_000);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    const firstSeen = clock.t;
    await b.coordinator.tick();
    // Until failoverMs has passed B must count A as live, so it only balances to its fair share
    // (ceil(4 / 2) = 2, one steal per tick); it does not treat A's leases as expired.
    expect(b.coordinator.status().liveInstances).toBe(2);
    expect(b.held()).toHaveLength(1);

    for (const t of [6_000, 8_000, 12_000, firstSeen + FAILOVER_MS - 1]) {
      clock.set(t);
      await b.coordinator.tick();
      expect(b.held()).toHaveLength(2);
      expect(store.countOwnedBy('A')).toBe(2);
      expect(b.coordinator.status().liveInstances).toBe(2);
    }

    clock.set(firstSeen + FAILOVER_MS);
    await b.coordinator.tick();
    expect(b.coordinator.status().liveInstances).toBe(1);
    expect(b.held()).toEqual(ALL);
    expect(store.owners()).toEqual({
      'shardId-0': 'B',
      'shardId-1': 'B',
      'shardId-2': 'B',
      'shardId-3': 'B',
    });
    expect(b.running()).toEqual(ALL);
  });

  it('graceful stop stops the workers, releases the leases and removes the heartbeat, so the other instance takes them at once', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await a.coordinator.tick();
    for (let i = 0; i < 2; i++) {
      clock.advance(STEP_MS);
      await b.coordinator.tick();
      clock.advance(STEP_MS);
      await a.coordinator.tick();
    }
    expect(a.held()).toHaveLength(2);
    expect(b.held()).toHaveLength(2);
    const aShards = a.held();
    const countersBefore = aShards.map((s) => store.counterOf(s));

    clock.advance(STEP_MS);
    await a.coordinator.stop();

    expect(a.workers.every((w) => w.stopped)).toBe(true);
    expect(a.held()).toEqual([]);
    for (const [i, shardId] of aShards.entries()) {
      expect(store.ownerOf(shardId)).toBeNull();
      expect(store.counterOf(shardId)).toBe(countersBefore[i] + 1);
    }
    expect(store.instances.has('instance#A')).toBe(false);

    // Well within failoverMs of B's last sight of A.
    clock.advance(STEP_MS);
    await b.coordinator.tick();
    expect(b.held()).toEqual(ALL);
    expect(store.countOwnedBy('B')).toBe(4);
    expect(b.coordinator.status().liveInstances).toBe(1);
  });

  it('a lease taken by another instance is dropped on the next tick: its worker is stopped and it is no longer reported as held', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.coordinator.tick();
    const victim = a.workersFor('shardId-2')[0];
    expect(victim.running).toBe(true);

    store.forceTake('shardId-2', 'Z');
    clock.advance(STEP_MS);
    await a.coordinator.tick();

    expect(victim.stopped).toBe(true);
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
    expect(a.running()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
    expect(store.ownerOf('shardId-2')).toBe('Z');
    expect(store.counterOf('shardId-2')).toBe(2);
    expect(a.workersFor('shardId-2')).toHaveLength(1);
    expect(a.warnings.some((w) => w.includes('shardId-2'))).toBe(true);
  });

  it('resharding: child shards are taken only after their parent is checkpointed at SHARD_END', async () => {
    const shards: ShardInfo[] = [
      { shardId: 'shardId-0', parentShardIds: [] },
      { shardId: 'shardId-1', parentShardIds: ['shardId-0'] },
      { shardId: 'shardId-2', parentShardIds: ['shardId-0'] },
    ];
    const a = instance(store, clock, 'A', shards);

    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-0']);
    expect(store.ownerOf('shardId-1')).toBeNull();
    expect(store.ownerOf('shardId-2')).toBeNull();

    const parent = a.workersFor('shardId-0')[0];
    await parent.checkpointer.checkpoint(parent.lease, '49600000000000000000000000001');
    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-0']);
    expect(a.workers).toHaveLength(1);

    await parent.checkpointer.checkpoint(parent.lease, SHARD_END);
    expect(store.leases.get('shardId-0')!.checkpoint).toBe(SHARD_END);
    parent.finish();
    await flush();
    // The ended parent's lease is given back.
    expect(store.ownerOf('shardId-0')).toBeNull();

    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-1', 'shardId-2']);
    expect(store.ownerOf('shardId-1')).toBe('A');
    expect(store.ownerOf('shardId-2')).toBe('A');
    // The ended parent is never read again.
    expect(a.workersFor('shardId-0')).toHaveLength(1);
    expect(store.ownerOf('shardId-0')).toBeNull();
  });

  it('resharding: a merge child waits until both of its parents are checkpointed at SHARD_END', async () => {
    const shards: ShardInfo[] = [
      { shardId: 'shardId-3', parentShardIds: [] },
      { shardId: 'shardId-4', parentShardIds: [] },
      { shardId: 'shardId-5', parentShardIds: ['shardId-3', 'shardId-4'] },
    ];
    const a = instance(store, clock, 'A', shards);
    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-3', 'shardId-4']);

    const first = a.workersFor('shardId-3')[0];
    await first.checkpointer.checkpoint(first.lease, SHARD_END);
    first.finish();
    await flush();
    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-4']);
    expect(store.ownerOf('shardId-5')).toBeNull();
    expect(a.workersFor('shardId-5')).toHaveLength(0);

    const second = a.workersFor('shardId-4')[0];
    await second.checkpointer.checkpoint(second.lease, SHARD_END);
    second.finish();
    await flush();
    clock.advance(STEP_MS);
    await a.coordinator.tick();
    expect(a.held()).toEqual(['shardId-5']);
    expect(store.ownerOf('shardId-5')).toBe('A');
    expect(a.workersFor('shardId-3')).toHaveLength(1);
    expect(a.workersFor('shardId-4')).toHaveLength(1);
  });

  it('a checkpoint in flight is not broken by a renewal in the same tick: the renewal waits and lands after it', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.coordinator.tick();
    const worker = a.workersFor('shardId-0')[0];
    expect(store.counterOf('shardId-0')).toBe(1);

    let openGate!: () => void;
    store.checkpointGate = new Promise<void>((resolve) => (openGate = resolve));
    const checkpoint = worker.checkpointer.checkpoint(
      worker.lease,
      '49600000000000000000000000042',
    );
    const outcome = checkpoint.then(
      () => 'stored',
      (error: Error) => error.name,
    );

    clock.advance(STEP_MS);
    const tick = a.coordinator.tick();
    await flush();
    // The renewal of shardId-0 has not landed while its checkpoint is in flight.
    expect(store.counterOf('shardId-0')).toBe(1);
    expect(store.leases.get('shardId-0')!.checkpoint).toBeUndefined();

    openGate();
    await tick;
    expect(await outcome).toBe('stored');

    const stored = store.leases.get('shardId-0')!;
    expect(stored.checkpoint).toBe('49600000000000000000000000042');
    expect(stored.leaseCounter).toBe(2);
    const checkpointAt = store.applied.indexOf(
      'checkpoint shardId-0 49600000000000000000000000042 at counter 1',
    );
    const renewAt = store.applied.indexOf('renew shardId-0 -> 2');
    expect(checkpointAt).toBeGreaterThanOrEqual(0);
    expect(renewAt).toBeGreaterThan(checkpointAt);
    expect(a.held()).toEqual(ALL);
    expect(worker.running).toBe(true);
  });

  it('a worker that ends without SHARD_END gets its lease released and retaken by a new worker on a following tick', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.coordinator.tick();
    const failed = a.workersFor('shardId-1')[0];
    await failed.checkpointer.checkpoint(failed.lease, '49600000000000000000000000007');

    failed.finish();
    await flush();
    expect(store.ownerOf('shardId-1')).toBeNull();
    expect(store.counterOf('shardId-1')).toBe(2);
    expect(a.held()).toEqual(['shardId-0', 'shardId-2', 'shardId-3']);

    clock.advance(STEP_MS);
    await a.coordinator.tick();
    const workers = a.workersFor('shardId-1');
    expect(workers).toHaveLength(2);
    expect(workers[1]).not.toBe(failed);
    expect(workers[1].running).toBe(true);
    expect(workers[1].lease).toMatchObject({
      leaseOwner: 'A',
      leaseCounter: 3,
      checkpoint: '49600000000000000000000000007',
    });
    expect(store.ownerOf('shardId-1')).toBe('A');
    expect(a.held()).toEqual(ALL);
  });

  it('a failing shard discovery (ListShards throttled or denied) does not stop the renewal of held leases', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await a.coordinator.tick();
    for (let i = 0; i < 2; i++) {
      clock.advance(STEP_MS);
      await b.coordinator.tick();
      clock.advance(STEP_MS);
      await a.coordinator.tick();
    }
    const aShards = a.held();
    expect(aShards).toHaveLength(2);

    // From now on A's ListShards fails; the table and B are fine. The first A tick past the
    // discovery interval tries to discover again.
    a.listShards.mockRejectedValue(
      Object.assign(new Error('Rate exceeded for stream'), { name: 'LimitExceededException' }),
    );
    clock.advance(DISCOVERY_MS);
    await b.coordinator.tick();
    const before = aShards.map((s) => store.counterOf(s));
    clock.advance(STEP_MS);
    await a.coordinator.tick().catch(() => undefined);
    // A's held leases were renewed in spite of the failed discovery.
    expect(aShards.map((s) => store.counterOf(s))).toEqual(before.map((c) => c + 1));

    for (let i = 0; i < 2 * (FAILOVER_MS / STEP_MS); i++) {
      clock.advance(STEP_MS / 2);
      await a.coordinator.tick().catch(() => undefined);
      clock.advance(STEP_MS / 2);
      await b.coordinator.tick();
    }
    // A kept its leases, so B did not see them expire, and no shard is read twice.
    expect(store.countOwnedBy('A')).toBe(2);
    expect(store.countOwnedBy('B')).toBe(2);
    expect([...a.running(), ...b.running()].sort()).toEqual(ALL);
  });

  it('status() reports the live instances and the owner of every lease', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await a.coordinator.tick();
    for (let i = 0; i < 3; i++) {
      clock.advance(STEP_MS);
      await b.coordinator.tick();
      clock.advance(STEP_MS);
      await a.coordinator.tick();
    }

    const status = a.coordinator.status();
    expect(status.owner).toBe('A');
    expect(status.liveInstances).toBe(2);
    expect(b.coordinator.status().liveInstances).toBe(2);
    const owners = Object.fromEntries(status.leases.map((l) => [l.shardId, l.owner]));
    expect(owners).toEqual(store.owners());
    expect(Object.values(owners).filter((o) => o === 'A')).toHaveLength(2);
    expect(Object.values(owners).filter((o) => o === 'B')).toHaveLength(2);
    expect(status.leases.every((l) => l.parentShardIds.length === 0)).toBe(true);
    expect(status.held.map((h) => h.shardId).sort()).toEqual(
      Object.keys(owners)
        .filter((s) => owners[s] === 'A')
        .sort(),
    );
    expect(status.held.every((h) => h.state === 'polling')).toBe(true);

    await a.coordinator.stop();
    clock.advance(STEP_MS);
    await b.coordinator.tick();
    const after = b.coordinator.status();
    expect(after.liveInstances).toBe(1);
    // The view is the table as read at the start of the tick: A's released leases, unowned.
    expect(after.leases.filter((l) => l.owner === 'B')).toHaveLength(2);
    expect(after.leases.filter((l) => l.owner === null)).toHaveLength(2);
    clock.advance(STEP_MS);
    await b.coordinator.tick();
    expect(b.coordinator.status().leases.every((l) => l.owner === 'B')).toBe(true);
  });
});
