import {
  InstanceHeartbeat,
  Lease,
  LeaseLostError,
  LeaseStore,
  SHARD_END,
} from './lease.repository';
import { Checkpointer, PollerStatus } from './shard-poller';

export interface ShardInfo {
  shardId: string;
  parentShardIds: string[];
  /** The shard's hash key range (decimal strings), as KCL stores it on the lease. */
  hashRange?: { startingHashKey: string; endingHashKey: string };
}

/** A running shard poller, as the coordinator sees it. */
export interface Worker {
  stop(): void;
  done: Promise<void>;
  status(): PollerStatus;
}

export interface CoordinatorOptions {
  owner: string;
  failoverMs: number;
  discoveryIntervalMs: number;
  listShards(): Promise<ShardInfo[]>;
  startWorker(lease: Lease, checkpointer: Checkpointer): Worker;
  log: { log(message: string): void; warn(message: string): void };
  /** Monotonic milliseconds. */
  now?: () => number;
}

interface Observation {
  counter: number;
  owner: string | null;
  changedAt: number;
}

interface Held {
  lease: Lease;
  worker: Worker;
  renewedAt: number;
  lock: Promise<unknown>;
}

export interface LeaseView {
  shardId: string;
  owner: string | null;
  checkpoint?: string;
  parentShardIds: string[];
}

/**
 * KCL-style lease coordination through the lease table alone. Each tick: heartbeat, renew held
 * leases (conditional on leaseCounter), read the table, take released or expired leases up to
 * ceil(active shards / live instances), else steal one from the most loaded instance. A child
 * shard is eligible only once every parent is checkpointed at SHARD_END. Renewals and checkpoints
 * of one lease never overlap, so a renewal cannot make a checkpoint fail.
 */
export class LeaseCoordinator {
  private readonly held = new Map<string, Held>();
  private readonly leaseSeen = new Map<string, Observation>();
  private readonly instanceSeen = new Map<string, Observation>();
  private view: LeaseView[] = [];
  private liveInstances = 1;
  private lastDiscovery = Number.NEGATIVE_INFINITY;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly store: LeaseStore,
    private readonly options: CoordinatorOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * A cycle runs twice per KCL renewal interval (failover / 3): expiry is judged from when this
   * instance saw a counter last move, so a dead owner's leases are taken within about
   * failover + 2 cycles = failover + one renewal interval.
   */
  get cycleIntervalMs(): number {
    return Math.max(100, Math.floor(this.options.failoverMs / 6));
  }

  start(): void {
    const loop = async () => {
      this.ticking = this.tick().catch((error: Error) =>
        this.options.log.warn(`lease cycle failed, retrying: ${error.name}: ${error.message}`),
      );
      await this.ticking;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.cycleIntervalMs);
    };
    void loop();
  }

  /** Stops every worker after its batch in flight, then releases the leases and the heartbeat. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const held = [...this.held.values()];
    for (const h of held) h.worker.stop();
    await Promise.allSettled(held.map((h) => h.worker.done));
    await Promise.allSettled(held.map((h) => this.exclusive(h, () => this.store.release(h.lease))));
    this.held.clear();
    await this.store.removeInstance(this.options.owner).catch(() => undefined);
  }

  status(): { owner: string; liveInstances: number; held: PollerStatus[]; leases: LeaseView[] } {
    return {
      owner: this.options.owner,
      liveInstances: this.liveInstances,
      held: [...this.held.values()].map((h) => h.worker.status()),
      leases: this.view,
    };
  }

  /** One coordination cycle; exposed for tests. */
  async tick(): Promise<void> {
    // Renewal first: nothing else failing (discovery, heartbeat) may let held leases expire.
    await this.renew();
    await this.store
      .heartbeat(this.options.owner, this.held.size)
      .catch((error: Error) =>
        this.options.log.warn(`heartbeat failed: ${error.name}: ${error.message}`),
      );
    if (this.now() - this.lastDiscovery >= this.options.discoveryIntervalMs) {
      try {
        await this.discover();
        this.lastDiscovery = this.now();
      } catch (error) {
        this.options.log.warn(
          `shard discovery failed, retrying: ${(error as Error).name}: ${(error as Error).message}`,
        );
      }
    }
    const { leases, instances } = await this.store.scan();
    const now = this.now();
    this.observe(leases, instances, now);
    this.view = leases.map((l) => ({
      shardId: l.leaseKey,
      owner: l.leaseOwner,
      checkpoint: l.checkpoint,
      parentShardIds: l.parentShardIds,
    }));
    if (!this.stopped) await this.acquire(leases, now);
  }

  private async discover(): Promise<void> {
    const shards = await this.options.listShards();
    for (const shard of shards)
      await this.store.create(shard.shardId, shard.parentShardIds, shard.hashRange);
  }

  private async renew(): Promise<void> {
    for (const h of [...this.held.values()]) {
      try {
        await this.exclusive(h, () => this.store.renew(h.lease));
        h.renewedAt = this.now();
      } catch (error) {
        if (error instanceof LeaseLostError) {
          this.options.log.warn(`${h.lease.leaseKey}: lease taken by another instance, stopping`);
          this.drop(h);
        } else if (this.now() - h.renewedAt > this.options.failoverMs) {
          // Others may already count the lease as expired: stop before they take it.
          this.options.log.warn(
            `${h.lease.leaseKey}: lease not renewed within the failover time, stopping`,
          );
          this.drop(h);
        } else {
          throw error;
        }
      }
    }
  }

  private observe(leases: Lease[], instances: InstanceHeartbeat[], now: number): void {
    const remember = (
      seen: Map<string, Observation>,
      key: string,
      counter: number,
      owner: string | null,
    ) => {
      const before = seen.get(key);
      if (!before || before.counter !== counter || before.owner !== owner) {
        seen.set(key, { counter, owner, changedAt: now });
      }
    };
    for (const l of leases) remember(this.leaseSeen, l.leaseKey, l.leaseCounter, l.leaseOwner);
    for (const i of instances) remember(this.instanceSeen, i.owner, i.leaseCounter, i.owner);
    const live = instances.filter(
      (i) =>
        i.owner === this.options.owner ||
        now - this.instanceSeen.get(i.owner)!.changedAt < this.options.failoverMs,
    );
    this.liveInstances = Math.max(
      1,
      new Set([...live.map((i) => i.owner), this.options.owner]).size,
    );
    for (const dead of instances.filter((i) => !live.includes(i))) {
      if (now - this.instanceSeen.get(dead.owner)!.changedAt > 3 * this.options.failoverMs) {
        void this.store.removeInstance(dead.owner, dead.leaseCounter).catch(() => undefined);
      }
    }
  }

  private expired(lease: Lease, now: number): boolean {
    if (lease.leaseOwner === null) return true;
    const seen = this.leaseSeen.get(lease.leaseKey);
    return seen !== undefined && now - seen.changedAt >= this.options.failoverMs;
  }

  private async acquire(leases: Lease[], now: number): Promise<void> {
    const byKey = new Map(leases.map((l) => [l.leaseKey, l]));
    const finished = (shardId: string) => {
      const parent = byKey.get(shardId);
      return parent === undefined || parent.checkpoint === SHARD_END;
    };
    const eligible = leases.filter(
      (l) => l.checkpoint !== SHARD_END && l.parentShardIds.every(finished),
    );
    const target = Math.ceil(eligible.length / this.liveInstances);
    const free = eligible.filter(
      (l) =>
        !this.held.has(l.leaseKey) && (l.leaseOwner === this.options.owner || this.expired(l, now)),
    );
    for (const lease of free) {
      if (this.held.size >= target) return;
      await this.takeAndStart(lease);
    }
    if (this.held.size >= target) return;
    const load = new Map<string, Lease[]>();
    for (const l of eligible) {
      if (l.leaseOwner && l.leaseOwner !== this.options.owner && !this.expired(l, now)) {
        load.set(l.leaseOwner, [...(load.get(l.leaseOwner) ?? []), l]);
      }
    }
    const [victim] = [...load.values()].sort((a, b) => b.length - a.length);
    if (victim && victim.length - this.held.size >= 2) {
      this.options.log.log(`balancing: taking ${victim[0].leaseKey} from ${victim[0].leaseOwner}`);
      await this.takeAndStart(victim[0]);
    }
  }

  private async takeAndStart(seen: Lease): Promise<void> {
    const lease = await this.store.take(seen, this.options.owner);
    if (!lease) return;
    const h: Held = { lease, renewedAt: this.now(), lock: Promise.resolve(), worker: undefined! };
    h.worker = this.options.startWorker(lease, {
      checkpoint: (l, sequenceNumber, state) =>
        this.exclusive(h, () => this.store.checkpoint(l, sequenceNumber, state)),
    });
    this.held.set(lease.leaseKey, h);
    void h.worker.done.finally(() => {
      if (this.held.get(lease.leaseKey) !== h) return;
      this.held.delete(lease.leaseKey);
      // Ended at SHARD_END, or failed: give the lease back for the next cycle.
      if (!this.stopped)
        void this.exclusive(h, () => this.store.release(lease)).catch(() => undefined);
    });
    this.options.log.log(`${lease.leaseKey}: lease taken (counter ${lease.leaseCounter})`);
  }

  private drop(h: Held): void {
    this.held.delete(h.lease.leaseKey);
    h.worker.stop();
  }

  private exclusive<T>(h: Held, action: () => Promise<T>): Promise<T> {
    const run = h.lock.then(action, action);
    h.lock = run.catch(() => undefined);
    return run;
  }
}
