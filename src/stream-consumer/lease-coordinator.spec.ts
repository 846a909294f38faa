import { CommitPlan } from '../aggregation/shard-aggregation';
import { Refusal } from '../aggregation/window-aggregator';
import { CoordinatorOptions, LeaseCoordinator, ShardInfo, Worker } from './lease-coordinator';
import {
  Checkpoint,
  INSTANCE_PREFIX,
  InstanceHeartbeat,
  Lease,
  LeaseLostError,
  LeaseStore,
  SHARD_END,
} from './lease.repository';
import { CommitStore } from './shard-commit.repository';
import { PollerState, PollerStatus } from './shard-poller';

const FAILOVER_MS = 10_000;
const DISCOVERY_MS = 60_000;
const STEP_MS = 1_000;
/** How long a shard whose state could not be restored is left alone after its first failure. */
const QUARANTINE_MS = FAILOVER_MS * 6;

const FOUR_SHARDS: ShardInfo[] = [0, 1, 2, 3].map((i) => ({
  shardId: `shardId-${i}`,
  parentShardIds: [],
}));

const copy = <T>(value: T): T => structuredClone(value);

/** Lets every already-settled promise chain (worker `done` handlers, releases) run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

/** 'stored', or the name of the error the write failed with. */
const outcome = (write: Promise<unknown>): Promise<string> =>
  write.then(
    () => 'stored',
    (error: Error) => error.name,
  );

/** What the SDK throws when a request's abort signal fires before the response. */
const abortError = (): Error => Object.assign(new Error('Request aborted'), { name: 'AbortError' });

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
 * Waits for `gate` (the write is in flight until then), as a request with `signal` would: when the
 * signal aborts before the gate opens, the write does not land and the call fails with AbortError.
 */
const land = async (gate: Promise<void> | undefined, signal?: AbortSignal): Promise<void> => {
  if (signal?.aborted) throw abortError();
  if (!gate) {
    await Promise.resolve();
  } else {
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError());
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([gate, aborted]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
  if (signal?.aborted) throw abortError();
};

/**
 * The lease table in memory, with the conditional-write semantics of LeaseRepository on DynamoDB:
 * take is conditional on leaseCounter and moves leaseCounter and leaseEpoch; renew and release are
 * conditional on leaseOwner and leaseEpoch (the fencing token) and move leaseCounter only.
 * Conditions use the values the caller sent (captured when the call starts, as the SDK serializes
 * them) and are evaluated when the write "lands" (after an optional gate).
 */
class FakeLeaseStore implements LeaseStore {
  readonly leases = new Map<string, Lease>();
  readonly instances = new Map<string, InstanceHeartbeat>();
  /** Every write that was applied, in order. */
  readonly applied: string[] = [];
  /** Every renew call, in order, with its abort signal and when (real time) it was sent. */
  readonly renewals: { shardId: string; signal?: AbortSignal; sentAt: number }[] = [];
  /** Renewals of these shards wait for the gate before they land (or fail when aborted). */
  readonly renewGates = new Map<string, Promise<void>>();
  /** Renewals of these shards fail with this error and do not land. */
  readonly renewErrors = new Map<string, Error>();

  constructor(private readonly clock: FakeClock) {}

  async scan(): Promise<{ leases: Lease[]; instances: InstanceHeartbeat[] }> {
    return {
      leases: [...this.leases.values()].map(copy),
      instances: [...this.instances.values()].map(copy),
    };
  }

  /** Every create call, in order, whether the lease existed or not. */
  readonly creates: string[] = [];

  async create(shardId: string, parentShardIds: string[]): Promise<void> {
    this.creates.push(shardId);
    if (this.leases.has(shardId)) return;
    this.leases.set(shardId, {
      leaseKey: shardId,
      leaseOwner: null,
      leaseCounter: 0,
      leaseEpoch: 0,
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
    stored.leaseEpoch += 1;
    this.applied.push(
      `take ${seen.leaseKey} by ${owner} -> ${stored.leaseCounter} epoch ${stored.leaseEpoch}`,
    );
    return copy(stored);
  }

  async renew(lease: Lease, signal?: AbortSignal): Promise<void> {
    const shardId = lease.leaseKey;
    const sent = { owner: lease.leaseOwner, epoch: lease.leaseEpoch };
    this.renewals.push({ shardId, signal, sentAt: performance.now() });
    await land(this.renewGates.get(shardId), signal);
    const error = this.renewErrors.get(shardId);
    if (error) throw error;
    const stored = this.owned(shardId, sent);
    stored.leaseCounter += 1;
    lease.leaseCounter += 1;
    this.applied.push(`renew ${shardId} -> ${stored.leaseCounter}`);
  }

  async release(lease: Lease): Promise<void> {
    const sent = { owner: lease.leaseOwner, epoch: lease.leaseEpoch };
    await Promise.resolve();
    try {
      const stored = this.owned(lease.leaseKey, sent);
      stored.leaseOwner = null;
      stored.leaseCounter += 1;
      lease.leaseOwner = null;
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

  /** Renewals of `shardId` stay in flight until the returned function is called (or they abort). */
  gateRenewals(shardId: string): () => void {
    let open!: () => void;
    this.renewGates.set(shardId, new Promise<void>((resolve) => (open = resolve)));
    return () => {
      this.renewGates.delete(shardId);
      open();
    };
  }

  /** Another instance takes the lease behind the coordinator's back. */
  forceTake(shardId: string, owner: string): void {
    const stored = this.leases.get(shardId)!;
    stored.leaseOwner = owner;
    stored.leaseCounter += 1;
    stored.leaseEpoch += 1;
    stored.ownerSwitchesSinceCheckpoint += 1;
  }

  ownerOf(shardId: string): string | null {
    return this.leases.get(shardId)!.leaseOwner;
  }

  counterOf(shardId: string): number {
    return this.leases.get(shardId)!.leaseCounter;
  }

  epochOf(shardId: string): number {
    return this.leases.get(shardId)!.leaseEpoch;
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

  /** The condition every write of an owner carries: `leaseOwner = :owner AND leaseEpoch = :epoch`. */
  owned(shardId: string, sent: { owner: string | null; epoch: number }): Lease {
    const stored = this.leases.get(shardId);
    if (!stored || stored.leaseOwner !== sent.owner || stored.leaseEpoch !== sent.epoch) {
      throw new LeaseLostError(shardId);
    }
    return stored;
  }
}

/**
 * The shard's commit path (ShardCommitRepository) on the same table, for checkpoints only: the
 * checkpoint is conditional on owner and epoch, as the transaction's lease update is, every
 * commit moves leaseCounter as it does, and none goes through the coordinator.
 */
class FakeCommitStore implements CommitStore {
  /** When set, the next commit waits for it before it lands. */
  gate?: Promise<void>;

  constructor(private readonly table: FakeLeaseStore) {}

  async commit(
    lease: Lease,
    plan: CommitPlan,
    position: Checkpoint | undefined,
  ): Promise<Refusal[]> {
    const sent = { owner: lease.leaseOwner, epoch: lease.leaseEpoch };
    const gate = this.gate;
    this.gate = undefined;
    await land(gate);
    const stored = this.table.owned(lease.leaseKey, sent);
    stored.leaseCounter += 1;
    lease.leaseCounter += 1;
    if (position === undefined) return [];
    const checkpoint = position.sequenceNumber;
    stored.checkpoint = checkpoint;
    stored.ownerSwitchesSinceCheckpoint = 0;
    stored.stateChunks = plan.state.length;
    lease.checkpoint = checkpoint;
    lease.ownerSwitchesSinceCheckpoint = 0;
    lease.stateChunks = plan.state.length;
    this.table.applied.push(
      `checkpoint ${lease.leaseKey} ${checkpoint} at epoch ${stored.leaseEpoch}`,
    );
    return [];
  }
}

/** A shard poller stand-in: `done` resolves on `stop()`, `finish()` or `fail()`. */
class FakeWorker implements Worker {
  readonly done: Promise<void>;
  private state: PollerState = 'polling';
  private failure?: string;
  private resolveDone!: () => void;

  constructor(
    readonly lease: Lease,
    private readonly commits: FakeCommitStore,
  ) {
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  get shardId(): string {
    return this.lease.leaseKey;
  }

  get stopped(): boolean {
    return this.state === 'stopped';
  }

  get running(): boolean {
    return this.state === 'polling';
  }

  /** The worker's fenced checkpoint write, through the commit path. */
  checkpoint(sequenceNumber: string): Promise<Refusal[]> {
    return this.commits.commit(this.lease, { aggregates: [], state: [] }, { sequenceNumber });
  }

  stop(): void {
    if (this.state === 'polling') this.state = 'stopped';
    this.resolveDone();
  }

  /** The poller returns by itself (the shard ended, or it ran out of records to read). */
  finish(): void {
    this.state = 'ended';
    this.resolveDone();
  }

  /** The poller gives up: its window state could not be restored. */
  fail(failure: string): void {
    this.state = 'failed';
    this.failure = failure;
    this.resolveDone();
  }

  status(): PollerStatus {
    return {
      shardId: this.lease.leaseKey,
      state: this.state,
      checkpoint: this.lease.checkpoint,
      ...(this.failure ? { failure: this.failure } : {}),
    };
  }
}

interface Instance {
  owner: string;
  coordinator: LeaseCoordinator;
  workers: FakeWorker[];
  warnings: string[];
  errors: string[];
  /** The commit path of this instance's workers. */
  commits: FakeCommitStore;
  /** How many times onRenewalFailure was called. */
  renewalFailures: number;
  listShards: jest.Mock<Promise<ShardInfo[]>, []>;
  /** One renewal round then one coordination cycle, as the two loops of start() run them. */
  cycle(): Promise<void>;
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
  overrides: Partial<CoordinatorOptions> = {},
): Instance => {
  const workers: FakeWorker[] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const commits = new FakeCommitStore(store);
  const listShards = jest.fn(async () => copy(shards));
  const options: CoordinatorOptions = {
    owner,
    failoverMs: FAILOVER_MS,
    discoveryIntervalMs: DISCOVERY_MS,
    listShards,
    startWorker: (lease) => {
      const worker = new FakeWorker(lease, commits);
      workers.push(worker);
      return worker;
    },
    log: { log: () => undefined, warn: (m) => warnings.push(m), error: (m) => errors.push(m) },
    onRenewalFailure: () => (self.renewalFailures += 1),
    now: clock.now,
    ...overrides,
  };
  const coordinator = new LeaseCoordinator(store, options);
  const self: Instance = {
    owner,
    coordinator,
    workers,
    warnings,
    errors,
    commits,
    renewalFailures: 0,
    listShards,
    cycle: async () => {
      await coordinator.renewAll();
      await coordinator.tick();
    },
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
  return self;
};

/** The one worker of `workers` (there must be exactly one). */
const only = (workers: FakeWorker[]): FakeWorker => {
  expect(workers).toHaveLength(1);
  return workers[0];
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
    for (const shardId of ALL) {
      expect(store.counterOf(shardId)).toBe(1);
      expect(store.epochOf(shardId)).toBe(1);
    }
    expect(a.workers.map((w) => w.shardId).sort()).toEqual(ALL);
    expect(
      a.workers.every(
        (w) => w.lease.leaseOwner === 'A' && w.lease.leaseCounter === 1 && w.lease.leaseEpoch === 1,
      ),
    ).toBe(true);
    expect(a.held()).toEqual(ALL);
    expect(a.coordinator.status().quarantined).toEqual([]);
    expect(store.instances.get('instance#A')).toMatchObject({ owner: 'A', leaseCounter: 1 });
  });

  it('two instances on four shards balance to two leases each, one steal per tick, then stay stable', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);

    await a.cycle();
    expect(store.countOwnedBy('A')).toBe(4);

    clock.advance(STEP_MS);
    await b.cycle();
    expect(store.countOwnedBy('B')).toBe(1);
    expect(b.held()).toHaveLength(1);

    clock.advance(STEP_MS);
    await a.cycle();
    // A learns of the steal through its failed renewal and stops that worker.
    expect(a.held()).toHaveLength(3);
    expect(a.running()).toHaveLength(3);

    clock.advance(STEP_MS);
    await b.cycle();
    expect(store.countOwnedBy('B')).toBe(2);
    expect(store.countOwnedBy('A')).toBe(2);

    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.held()).toHaveLength(2);
    expect(b.held()).toHaveLength(2);

    const owners = store.owners();
    const started = a.workers.length + b.workers.length;
    for (let round = 0; round < 5; round++) {
      clock.advance(STEP_MS);
      await a.cycle();
      clock.advance(STEP_MS);
      await b.cycle();
    }
    expect(store.owners()).toEqual(owners);
    expect(a.workers.length + b.workers.length).toBe(started);
    expect(a.held()).toHaveLength(2);
    expect(b.held()).toHaveLength(2);
    // Every shard is read by exactly one running worker.
    expect([...a.running(), ...b.running()].sort()).toEqual(ALL);
    expect(a.running()).toEqual(a.held());
    expect(b.running()).toEqual(b.held());
    // Each lease changed hands at most once, and only steals moved the epoch.
    expect(ALL.map((s) => store.epochOf(s)).sort()).toEqual([1, 1, 2, 2]);
  });

  it('an uneven split is stable: on three shards two instances settle at 2/1 and do not trade leases back and forth', async () => {
    const three = FOUR_SHARDS.slice(0, 3);
    const a = instance(store, clock, 'A', three);
    const b = instance(store, clock, 'B', three);
    await a.cycle();
    clock.advance(STEP_MS);
    await b.cycle();
    clock.advance(STEP_MS);
    await a.cycle();
    expect(store.countOwnedBy('A')).toBe(2);
    expect(store.countOwnedBy('B')).toBe(1);

    const owners = store.owners();
    for (let round = 0; round < 5; round++) {
      clock.advance(STEP_MS);
      await b.cycle();
      clock.advance(STEP_MS);
      await a.cycle();
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
    await a.cycle();
    expect(store.countOwnedBy('A')).toBe(4);
    // A is SIGKILLed: it never renews or ticks again and never releases anything.

    clock.set(5_000);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    const firstSeen = clock.t;
    await b.cycle();
    // Until failoverMs has passed B must count A as live, so it only balances to its fair share
    // (ceil(4 / 2) = 2, one steal per tick); it does not treat A's leases as expired.
    expect(b.coordinator.status().liveInstances).toBe(2);
    expect(b.held()).toHaveLength(1);

    for (const t of [6_000, 8_000, 12_000, firstSeen + FAILOVER_MS - 1]) {
      clock.set(t);
      await b.cycle();
      expect(b.held()).toHaveLength(2);
      expect(store.countOwnedBy('A')).toBe(2);
      expect(b.coordinator.status().liveInstances).toBe(2);
    }

    clock.set(firstSeen + FAILOVER_MS);
    await b.cycle();
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
    await a.cycle();
    for (let i = 0; i < 2; i++) {
      clock.advance(STEP_MS);
      await b.cycle();
      clock.advance(STEP_MS);
      await a.cycle();
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
    await b.cycle();
    expect(b.held()).toEqual(ALL);
    expect(store.countOwnedBy('B')).toBe(4);
    expect(b.coordinator.status().liveInstances).toBe(1);
  });

  it('a lease taken by another instance is dropped on the next renewal: its worker is stopped and it is no longer reported as held', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const victim = a.workersFor('shardId-2')[0];
    expect(victim.running).toBe(true);

    store.forceTake('shardId-2', 'Z');
    clock.advance(STEP_MS);
    await a.coordinator.renewAll();

    expect(victim.stopped).toBe(true);
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
    expect(a.running()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
    expect(store.ownerOf('shardId-2')).toBe('Z');
    expect(store.counterOf('shardId-2')).toBe(2);
    expect(store.epochOf('shardId-2')).toBe(2);
    expect(a.warnings.some((w) => w.includes('shardId-2'))).toBe(true);
    // A lost lease is not a failed renewal.
    expect(a.renewalFailures).toBe(0);

    await a.coordinator.tick();
    expect(a.workersFor('shardId-2')).toHaveLength(1);
    expect(store.ownerOf('shardId-2')).toBe('Z');
  });

  it('resharding: child shards are taken only after their parent is checkpointed at SHARD_END', async () => {
    const shards: ShardInfo[] = [
      { shardId: 'shardId-0', parentShardIds: [] },
      { shardId: 'shardId-1', parentShardIds: ['shardId-0'] },
      { shardId: 'shardId-2', parentShardIds: ['shardId-0'] },
    ];
    const a = instance(store, clock, 'A', shards);

    await a.cycle();
    expect(a.held()).toEqual(['shardId-0']);
    expect(store.ownerOf('shardId-1')).toBeNull();
    expect(store.ownerOf('shardId-2')).toBeNull();

    const parent = a.workersFor('shardId-0')[0];
    await parent.checkpoint('49600000000000000000000000001');
    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.held()).toEqual(['shardId-0']);
    expect(a.workers).toHaveLength(1);

    await parent.checkpoint(SHARD_END);
    expect(store.leases.get('shardId-0')!.checkpoint).toBe(SHARD_END);
    parent.finish();
    await flush();
    // The ended parent's lease is given back.
    expect(store.ownerOf('shardId-0')).toBeNull();

    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.held()).toEqual(['shardId-1', 'shardId-2']);
    expect(store.ownerOf('shardId-1')).toBe('A');
    expect(store.ownerOf('shardId-2')).toBe('A');
    // The ended parent is never read again.
    expect(a.workersFor('shardId-0')).toHaveLength(1);
    expect(store.ownerOf('shardId-0')).toBeNull();
    expect(a.coordinator.status().quarantined).toEqual([]);
  });

  it('resharding: a merge child waits until both of its parents are checkpointed at SHARD_END', async () => {
    const shards: ShardInfo[] = [
      { shardId: 'shardId-3', parentShardIds: [] },
      { shardId: 'shardId-4', parentShardIds: [] },
      { shardId: 'shardId-5', parentShardIds: ['shardId-3', 'shardId-4'] },
    ];
    const a = instance(store, clock, 'A', shards);
    await a.cycle();
    expect(a.held()).toEqual(['shardId-3', 'shardId-4']);

    const first = a.workersFor('shardId-3')[0];
    await first.checkpoint(SHARD_END);
    first.finish();
    await flush();
    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.held()).toEqual(['shardId-4']);
    expect(store.ownerOf('shardId-5')).toBeNull();
    expect(a.workersFor('shardId-5')).toHaveLength(0);

    const second = a.workersFor('shardId-4')[0];
    await second.checkpoint(SHARD_END);
    second.finish();
    await flush();
    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.held()).toEqual(['shardId-5']);
    expect(store.ownerOf('shardId-5')).toBe('A');
    expect(a.workersFor('shardId-3')).toHaveLength(1);
    expect(a.workersFor('shardId-4')).toHaveLength(1);
  });

  it('a checkpoint renews its lease: the next renewal round skips that lease only, and the one after renews it again', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    await a.coordinator.renewAll();
    expect(ALL.map((s) => store.counterOf(s))).toEqual([2, 2, 2, 2]);
    const renewalsOf = (shardId: string) =>
      store.renewals.filter((r) => r.shardId === shardId).length;

    expect(
      await outcome(a.workersFor('shardId-0')[0].checkpoint('49600000000000000000000000041')),
    ).toBe('stored');
    expect(store.counterOf('shardId-0')).toBe(3);
    const before = renewalsOf('shardId-0');
    clock.advance(STEP_MS);
    await a.coordinator.renewAll();
    expect(renewalsOf('shardId-0')).toBe(before);
    expect(ALL.map((s) => store.counterOf(s))).toEqual([3, 3, 3, 3]);

    // No checkpoint since: renewed again, so the counter moves at least every other round.
    clock.advance(STEP_MS);
    await a.coordinator.renewAll();
    expect(renewalsOf('shardId-0')).toBe(before + 1);
    expect(ALL.map((s) => store.counterOf(s))).toEqual([4, 4, 4, 4]);
    expect(a.renewalFailures).toBe(0);
    expect(a.held()).toEqual(ALL);
  });

  it('a renewal and a checkpoint never break each other: renewals move leaseCounter, writes are fenced by leaseEpoch', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const worker = a.workersFor('shardId-0')[0];
    expect(store.leases.get('shardId-0')).toMatchObject({ leaseCounter: 1, leaseEpoch: 1 });

    // A checkpoint in flight while three renewals land.
    let openCommit!: () => void;
    a.commits.gate = new Promise<void>((resolve) => (openCommit = resolve));
    const first = outcome(worker.checkpoint('49600000000000000000000000041'));
    for (let i = 0; i < 3; i++) {
      clock.advance(STEP_MS);
      await a.cycle();
    }
    expect(store.counterOf('shardId-0')).toBe(4);
    expect(store.leases.get('shardId-0')!.checkpoint).toBeUndefined();
    openCommit();
    expect(await first).toBe('stored');
    expect(store.leases.get('shardId-0')!.checkpoint).toBe('49600000000000000000000000041');
    expect(store.counterOf('shardId-0')).toBe(5);
    // That checkpoint was this round's renewal of shardId-0.
    await a.coordinator.renewAll();

    // A renewal in flight while a checkpoint lands.
    const openRenewal = store.gateRenewals('shardId-0');
    const renewal = a.coordinator.renewAll();
    await flush();
    expect(await outcome(worker.checkpoint('49600000000000000000000000042'))).toBe('stored');
    openRenewal();
    await renewal;
    expect(store.leases.get('shardId-0')).toMatchObject({
      leaseOwner: 'A',
      leaseCounter: 7,
      leaseEpoch: 1,
      checkpoint: '49600000000000000000000000042',
    });
    const checkpointAt = store.applied.indexOf(
      'checkpoint shardId-0 49600000000000000000000000042 at epoch 1',
    );
    const renewAt = store.applied.indexOf('renew shardId-0 -> 7');
    expect(checkpointAt).toBeGreaterThanOrEqual(0);
    expect(renewAt).toBeGreaterThan(checkpointAt);
    expect(a.renewalFailures).toBe(0);
    expect(a.held()).toEqual(ALL);
    expect(worker.running).toBe(true);

    // Another instance takes the lease: the epoch moves, so the old owner's writes are refused.
    store.forceTake('shardId-0', 'Z');
    expect(store.epochOf('shardId-0')).toBe(2);
    expect(await outcome(worker.checkpoint('49600000000000000000000000043'))).toBe(
      'LeaseLostError',
    );
    expect(store.leases.get('shardId-0')!.checkpoint).toBe('49600000000000000000000000042');
    clock.advance(STEP_MS);
    await a.coordinator.renewAll();
    expect(worker.stopped).toBe(true);
    expect(a.held()).toEqual(['shardId-1', 'shardId-2', 'shardId-3']);
    expect(store.ownerOf('shardId-0')).toBe('Z');
  });

  it('a renewal that hangs holds up no renewal the store answers: the others are renewed every renewAll, the hung one is aborted after renewTimeoutMs, counted, and stays held', async () => {
    // A short failover time, so the real timer of AbortSignal.timeout fires within the test.
    const a = instance(store, clock, 'A', FOUR_SHARDS, { failoverMs: 400 });
    expect(a.coordinator.renewTimeoutMs).toBe(100);
    await a.coordinator.tick();
    expect(a.held()).toEqual(ALL);
    const others = ALL.filter((s) => s !== 'shardId-1');
    // shardId-1's renewals never land; they end only when their signal aborts.
    store.gateRenewals('shardId-1');

    const rounds: Promise<void>[] = [];
    for (let round = 1; round <= 3; round++) {
      clock.advance(50);
      rounds.push(a.coordinator.renewAll());
      await flush();
      expect(others.map((s) => store.counterOf(s))).toEqual(others.map(() => 1 + round));
      expect(store.counterOf('shardId-1')).toBe(1);
    }
    // The hung renewal was sent once, not once per round, and has not failed yet.
    const hung = store.renewals.filter((r) => r.shardId === 'shardId-1');
    expect(hung).toHaveLength(1);
    expect(hung[0].signal?.aborted).toBe(false);
    expect(a.renewalFailures).toBe(0);

    // Every round settles once the hung renewal's signal times out.
    await Promise.all(rounds);
    expect(hung[0].signal?.aborted).toBe(true);
    expect((hung[0].signal?.reason as Error).name).toBe('TimeoutError');
    // (Node times a timer from the loop's cached clock, which may lag a little: hence the slack.)
    expect(performance.now() - hung[0].sentAt).toBeGreaterThanOrEqual(
      a.coordinator.renewTimeoutMs / 2,
    );
    expect(a.renewalFailures).toBe(1);
    expect(
      a.warnings.filter((w) => w.includes('shardId-1') && w.includes('AbortError')),
    ).toHaveLength(1);
    expect(store.counterOf('shardId-1')).toBe(1);
    // It stays held and its worker keeps reading: its writes are fenced in the table.
    expect(a.held()).toEqual(ALL);
    expect(a.running()).toEqual(ALL);
    expect(store.ownerOf('shardId-1')).toBe('A');

    // The next round sends a new renewal of it, which lands once the table answers again.
    store.renewGates.delete('shardId-1');
    clock.advance(50);
    await a.coordinator.renewAll();
    expect(store.renewals.filter((r) => r.shardId === 'shardId-1')).toHaveLength(2);
    expect(store.counterOf('shardId-1')).toBe(2);
    expect(others.map((s) => store.counterOf(s))).toEqual(others.map(() => 5));
    expect(a.renewalFailures).toBe(1);
  });

  it('a renewal of an old holding that lands late does not drop the lease taken again since', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const open = store.gateRenewals('shardId-1');
    const late = a.coordinator.renewAll();
    await flush();
    a.workersFor('shardId-1')[0].finish(); // the worker ends, the lease is released…
    await flush();
    clock.advance(STEP_MS);
    await a.coordinator.tick(); // …and taken again with a new epoch and a new worker
    expect(a.workersFor('shardId-1')).toHaveLength(2);
    open(); // the old renewal lands now and fails its epoch check
    await late;
    expect(a.held()).toEqual(ALL);
    await a.cycle();
    expect(a.running()).toEqual(ALL);
    expect(a.workersFor('shardId-1')).toHaveLength(2);
    expect(a.renewalFailures).toBe(0);
  });

  it('a renewal failing with a throttling error keeps the lease and its worker; a LeaseLostError drops the lease and stops its worker', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const throttled = a.workersFor('shardId-0')[0];
    const lost = a.workersFor('shardId-2')[0];
    store.renewErrors.set(
      'shardId-0',
      Object.assign(new Error('The level of configured provisioned throughput was exceeded'), {
        name: 'ProvisionedThroughputExceededException',
      }),
    );
    store.forceTake('shardId-2', 'Z');

    for (let i = 0; i < 3; i++) {
      clock.advance(STEP_MS);
      await a.coordinator.renewAll();
    }
    // The throttled lease is still held, by the same worker, and counted once per failed renewal.
    expect(a.renewalFailures).toBe(3);
    expect(
      a.warnings.filter(
        (w) => w.includes('shardId-0') && w.includes('ProvisionedThroughputExceededException'),
      ),
    ).toHaveLength(3);
    expect(throttled.running).toBe(true);
    expect(store.ownerOf('shardId-0')).toBe('A');
    expect(store.counterOf('shardId-0')).toBe(1);
    // The lost one is dropped at once and its worker stopped.
    expect(lost.stopped).toBe(true);
    expect(store.ownerOf('shardId-2')).toBe('Z');
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
    expect(a.running()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);

    // Once the throttling is over the lease is renewed again; no worker was restarted.
    store.renewErrors.delete('shardId-0');
    clock.advance(STEP_MS);
    await a.cycle();
    expect(store.counterOf('shardId-0')).toBe(2);
    expect(a.renewalFailures).toBe(3);
    expect(only(a.workersFor('shardId-0'))).toBe(throttled);
    expect(only(a.workersFor('shardId-2'))).toBe(lost);
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-3']);
  });

  it('a worker that fails (state not restorable) has its lease released and is quarantined: not retaken by this instance until the quarantine is over, while another instance may take it', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const failed = a.workersFor('shardId-3')[0];
    const reason = 'window state of shardId-3 cannot be restored: 1 of its 2 chunk(s) are missing';

    clock.set(10_000);
    const failedAt = clock.t;
    failed.fail(reason);
    await flush();
    expect(store.ownerOf('shardId-3')).toBeNull();
    expect(store.counterOf('shardId-3')).toBe(2);
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-2']);
    expect(a.coordinator.status().quarantined).toEqual([
      { shardId: 'shardId-3', reason, failures: 1, retryInMs: QUARANTINE_MS },
    ]);
    expect(a.errors).toHaveLength(1);
    expect(a.errors[0]).toContain('shardId-3');

    // This instance leaves it alone, to the last millisecond of the quarantine.
    for (const t of [failedAt + STEP_MS, failedAt + QUARANTINE_MS / 2]) {
      clock.set(t);
      await a.cycle();
      expect(store.ownerOf('shardId-3')).toBeNull();
      expect(only(a.workersFor('shardId-3'))).toBe(failed);
      expect(a.coordinator.status().quarantined).toMatchObject([
        { shardId: 'shardId-3', retryInMs: failedAt + QUARANTINE_MS - t },
      ]);
    }

    // Meanwhile another instance, which may well restore the state, takes it.
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await b.cycle();
    expect(store.ownerOf('shardId-3')).toBe('B');
    expect(b.running()).toContain('shardId-3');
    expect(b.coordinator.status().quarantined).toEqual([]);
    // ...and gives it back (with the one it stole to balance) when it stops.
    await b.coordinator.stop();
    expect(store.countOwnedBy('B')).toBe(0);

    clock.set(failedAt + QUARANTINE_MS - 1);
    await a.cycle();
    expect(store.ownerOf('shardId-3')).toBeNull();
    expect(a.held()).toEqual(['shardId-0', 'shardId-1', 'shardId-2']);
    expect(only(a.workersFor('shardId-3'))).toBe(failed);

    // Once the quarantine is over this instance takes it again, with a new worker.
    clock.set(failedAt + QUARANTINE_MS);
    await a.cycle();
    expect(a.coordinator.status().quarantined).toEqual([]);
    expect(store.ownerOf('shardId-3')).toBe('A');
    expect(a.held()).toEqual(ALL);
    const retried = a.workersFor('shardId-3');
    expect(retried).toHaveLength(2);
    expect(retried[1].running).toBe(true);

    // A second failure quarantines it twice as long.
    retried[1].fail(reason);
    await flush();
    expect(store.ownerOf('shardId-3')).toBeNull();
    expect(a.coordinator.status().quarantined).toEqual([
      { shardId: 'shardId-3', reason, failures: 2, retryInMs: 2 * QUARANTINE_MS },
    ]);
    clock.advance(2 * QUARANTINE_MS - 1);
    await a.cycle();
    expect(store.ownerOf('shardId-3')).toBeNull();
    clock.advance(1);
    await a.cycle();
    expect(store.ownerOf('shardId-3')).toBe('A');
    expect(a.workersFor('shardId-3')).toHaveLength(3);
  });

  it('a worker that ends without SHARD_END gets its lease released and retaken by a new worker on a following tick', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    await a.cycle();
    const ended = a.workersFor('shardId-1')[0];
    await ended.checkpoint('49600000000000000000000000007');

    ended.finish();
    await flush();
    expect(store.ownerOf('shardId-1')).toBeNull();
    // Taken (1), checkpointed (2), released (3).
    expect(store.counterOf('shardId-1')).toBe(3);
    expect(a.held()).toEqual(['shardId-0', 'shardId-2', 'shardId-3']);
    // It did not fail: no quarantine.
    expect(a.coordinator.status().quarantined).toEqual([]);

    clock.advance(STEP_MS);
    await a.cycle();
    const workers = a.workersFor('shardId-1');
    expect(workers).toHaveLength(2);
    expect(workers[1]).not.toBe(ended);
    expect(workers[1].running).toBe(true);
    expect(workers[1].lease).toMatchObject({
      leaseOwner: 'A',
      leaseCounter: 4,
      leaseEpoch: 2,
      checkpoint: '49600000000000000000000000007',
    });
    expect(store.ownerOf('shardId-1')).toBe('A');
    expect(a.held()).toEqual(ALL);
    // The ended worker's lease object is of the old epoch: it can write nothing more.
    expect(await outcome(ended.checkpoint('49600000000000000000000000008'))).toBe('LeaseLostError');
  });

  it('a failing shard discovery (ListShards throttled or denied) does not stop the renewal of held leases', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await a.cycle();
    for (let i = 0; i < 2; i++) {
      clock.advance(STEP_MS);
      await b.cycle();
      clock.advance(STEP_MS);
      await a.cycle();
    }
    const aShards = a.held();
    expect(aShards).toHaveLength(2);

    // From now on A's ListShards fails; the table and B are fine. The first A cycle past the
    // discovery interval tries to discover again.
    a.listShards.mockRejectedValue(
      Object.assign(new Error('Rate exceeded for stream'), { name: 'LimitExceededException' }),
    );
    clock.advance(DISCOVERY_MS);
    await b.cycle();
    const before = aShards.map((s) => store.counterOf(s));
    const calls = a.listShards.mock.calls.length;
    clock.advance(STEP_MS);
    await a.cycle();
    expect(a.listShards.mock.calls.length).toBe(calls + 1);
    // A's held leases were renewed in spite of the failed discovery.
    expect(aShards.map((s) => store.counterOf(s))).toEqual(before.map((c) => c + 1));

    for (let i = 0; i < 2 * (FAILOVER_MS / STEP_MS); i++) {
      clock.advance(STEP_MS / 2);
      await a.cycle();
      clock.advance(STEP_MS / 2);
      await b.cycle();
    }
    // A kept its leases, so B did not see them expire, and no shard is read twice.
    expect(store.countOwnedBy('A')).toBe(2);
    expect(store.countOwnedBy('B')).toBe(2);
    expect([...a.running(), ...b.running()].sort()).toEqual(ALL);
  });

  it('discovery creates only the leases the last scan did not see: none again for known shards, one for each new shard', async () => {
    const shards = copy(FOUR_SHARDS);
    const a = instance(store, clock, 'A', shards);
    await a.cycle();
    expect(store.creates.sort()).toEqual(ALL);

    clock.advance(DISCOVERY_MS);
    await a.cycle();
    expect(a.listShards).toHaveBeenCalledTimes(2);
    expect(store.creates).toHaveLength(ALL.length);

    // A split: two children of shardId-3 appear in ListShards.
    shards.push(
      { shardId: 'shardId-4', parentShardIds: ['shardId-3'] },
      { shardId: 'shardId-5', parentShardIds: ['shardId-3'] },
    );
    clock.advance(DISCOVERY_MS);
    await a.cycle();
    expect(store.creates.slice(ALL.length)).toEqual(['shardId-4', 'shardId-5']);
    expect(store.leases.get('shardId-4')?.parentShardIds).toEqual(['shardId-3']);
  });

  it('status() reports the live instances and the owner of every lease', async () => {
    const a = instance(store, clock, 'A', FOUR_SHARDS);
    const b = instance(store, clock, 'B', FOUR_SHARDS);
    await a.cycle();
    for (let i = 0; i < 3; i++) {
      clock.advance(STEP_MS);
      await b.cycle();
      clock.advance(STEP_MS);
      await a.cycle();
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
    expect(status.quarantined).toEqual([]);

    await a.coordinator.stop();
    clock.advance(STEP_MS);
    await b.cycle();
    const after = b.coordinator.status();
    expect(after.liveInstances).toBe(1);
    // The view is the table as read at the start of the tick: A's released leases, unowned.
    expect(after.leases.filter((l) => l.owner === 'B')).toHaveLength(2);
    expect(after.leases.filter((l) => l.owner === null)).toHaveLength(2);
    clock.advance(STEP_MS);
    await b.cycle();
    expect(b.coordinator.status().leases.every((l) => l.owner === 'B')).toBe(true);
  });
});
