import {
  InstanceHeartbeat,
  Lease,
  LeaseLostError,
  LeaseStore,
  SHARD_END,
} from './lease.repository';
import { PollerStatus } from './shard-poller';

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
  startWorker(lease: Lease): Worker;
  log: { log(message: string): void; warn(message: string): void; error(message: string): void };
  /** Counts renewals that failed or timed out (not lost leases). */
  onRenewalFailure?(): void;
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
  /** `lease.leaseCounter` after the last renewal, or when a commit was last seen to move it. */
  counter: number;
  renewing?: Promise<void>;
}

/** A shard this instance will not take for a while: its window state could not be restored. */
export interface Quarantine {
  shardId: string;
  reason: string;
  failures: number;
  retryInMs: number;
}

const QUARANTINE_MAX_MS = 30 * 60_000;

export interface LeaseView {
  shardId: string;
  owner: string | null;
  checkpoint?: string;
  parentShardIds: string[];
}

/**
 * KCL-style lease coordination through the lease table alone. A renewal loop renews every held
 * lease at once, each renewal bounded by a timeout (the store sends a round's renewals together,
 * so a hung call delays the leases in it until then, and the next round sends them again). A
 * cycle loop heartbeats, reads the table, takes released or expired leases up to
 * ceil(active shards / live instances), else steals one from the most loaded instance. A child
 * shard is eligible only once every parent is checkpointed at SHARD_END. Renewals move
 * leaseCounter while checkpoints are fenced by leaseEpoch, so neither can break the other. Every
 * commit transaction moves leaseCounter too: a lease whose worker committed since the last renewal
 * is not renewed in that interval, so the counter still moves at least every two intervals
 * (failover / 3, KCL's renewal pace) and a busy shard costs no renewal calls.
 */
export class LeaseCoordinator {
  private readonly held = new Map<string, Held>();
  private readonly leaseSeen = new Map<string, Observation>();
  private readonly instanceSeen = new Map<string, Observation>();
  private readonly quarantined = new Map<
    string,
    Omit<Quarantine, 'retryInMs'> & { until: number }
  >();
  private view: LeaseView[] = [];
  private liveInstances = 1;
  private lastDiscovery = Number.NEGATIVE_INFINITY;
  private timer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
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

  /** A renewal that has not answered after this long failed; the next one comes a cycle later. */
  get renewTimeoutMs(): number {
    return Math.max(100, Math.floor(this.options.failoverMs / 4));
  }

  start(): void {
    const loop = async () => {
      this.ticking = this.tick().catch((error: Error) =>
        this.options.log.warn(`lease cycle failed, retrying: ${error.name}: ${error.message}`),
      );
      await this.ticking;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.cycleIntervalMs);
    };
    // Each interval renews every held lease; a renewal still in flight is not doubled, so a
    // hung one holds up neither the next interval nor the renewals the store answers.
    const renewLoop = () => {
      void this.renewAll();
      if (!this.stopped) this.renewTimer = setTimeout(renewLoop, this.cycleIntervalMs);
    };
    void loop();
    this.renewTimer = setTimeout(renewLoop, this.cycleIntervalMs);
  }

  /**
   * Stops every worker after its batch in flight, then releases the leases and the heartbeat. It
   * waits neither for a lease cycle nor for a renewal in flight, and bounds each release, so a
   * hung table cannot hold a shutdown past its deadline.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    const held = [...this.held.values()];
    for (const h of held) h.worker.stop();
    await Promise.allSettled(held.map((h) => h.worker.done));
    const released = await Promise.allSettled(
      held.map((h) => this.store.release(h.lease, AbortSignal.timeout(this.renewTimeoutMs))),
    );
    released.forEach((r, i) => {
      if (r.status === 'rejected')
        this.options.log.warn(
          `${held[i].lease.leaseKey}: release failed, others take it after the failover time: ${(r.reason as Error).message}`,
        );
    });
    this.held.clear();
    await this.store
      .removeInstance(this.options.owner, undefined, AbortSignal.timeout(this.renewTimeoutMs))
      .catch((error: Error) =>
        this.options.log.warn(`heartbeat removal failed: ${error.name}: ${error.message}`),
      );
  }

  status(): {
    owner: string;
    liveInstances: number;
    held: PollerStatus[];
    leases: LeaseView[];
    quarantined: Quarantine[];
  } {
    const now = this.now();
    return {
      owner: this.options.owner,
      liveInstances: this.liveInstances,
      held: [...this.held.values()].map((h) => h.worker.status()),
      leases: this.view,
      quarantined: [...this.quarantined.values()]
        .filter((q) => q.until > now)
        .map(({ until, ...q }) => ({ ...q, retryInMs: until - now })),
    };
  }

  /**
   * Renews every held lease at once, but one whose commit moved its counter since the last
   * renewal; each renewal is bounded by renewTimeoutMs. The store may send a tick's renewals
   * together (LeaseRepository: 25 to a call), so a call that fails or hangs fails the renewals
   * it carries, each at its own timeout, and no other. A lease taken by another instance is
   * dropped; one that could not be renewed stays held: its worker's writes are fenced in the
   * table, so it learns of a loss there.
   */
  async renewAll(): Promise<void> {
    await Promise.all([...this.held.values()].map((h) => this.renew(h)));
  }

  /** One coordination cycle (without renewal); exposed for tests. */
  async tick(): Promise<void> {
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
    // A lease the last scan saw needs no create: it would be a conditional put the table refuses.
    const known = new Set(this.view.map((l) => l.shardId));
    for (const shard of shards.filter((s) => !known.has(s.shardId)))
      await this.store.create(shard.shardId, shard.parentShardIds, shard.hashRange);
  }

  private renew(h: Held): Promise<void> {
    if (!h.renewing && h.lease.leaseCounter !== h.counter) {
      // A commit moved the counter within the last interval: that was the renewal.
      h.counter = h.lease.leaseCounter;
      h.renewedAt = this.now();
      return Promise.resolve();
    }
    // A renewal still in flight (it has its own timeout) is not doubled.
    h.renewing ??= this.store
      .renew(h.lease, AbortSignal.timeout(this.renewTimeoutMs))
      .then(
        () => {
          h.renewedAt = this.now();
          h.counter = h.lease.leaseCounter;
        },
        (error: Error) => {
          if (error instanceof LeaseLostError) {
            this.options.log.warn(`${h.lease.leaseKey}: lease taken by another instance, stopping`);
            this.drop(h);
            return;
          }
          if (this.held.get(h.lease.leaseKey) !== h) return;
          this.options.onRenewalFailure?.();
          const late = this.now() - h.renewedAt;
          this.options.log.warn(
            `${h.lease.leaseKey}: lease renewal failed (last renewed ${Math.round(late)} ms ago): ${error.name}: ${error.message}`,
          );
        },
      )
      .finally(() => {
        h.renewing = undefined;
      });
    return h.renewing;
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
        void this.store
          .removeInstance(dead.owner, dead.leaseCounter)
          .catch((error: Error) =>
            this.options.log.warn(
              `removing the heartbeat of ${dead.owner} failed: ${error.message}`,
            ),
          );
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
      (l) =>
        l.checkpoint !== SHARD_END &&
        l.parentShardIds.every(finished) &&
        !((this.quarantined.get(l.leaseKey)?.until ?? 0) > now),
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
    if (this.stopped) {
      // Taken while stopping: give it straight back.
      await this.store.release(lease, AbortSignal.timeout(this.renewTimeoutMs)).catch(() => {
        this.options.log.warn(
          `${lease.leaseKey}: release failed, others take it after the failover time`,
        );
      });
      return;
    }
    const h: Held = {
      lease,
      renewedAt: this.now(),
      counter: lease.leaseCounter,
      worker: this.options.startWorker(lease),
    };
    this.held.set(lease.leaseKey, h);
    void h.worker.done.finally(() => this.finished(h));
    this.options.log.log(`${lease.leaseKey}: lease taken (epoch ${lease.leaseEpoch})`);
  }

  /** A worker ended at SHARD_END, or failed: give the lease back for the next cycle. */
  private finished(h: Held): void {
    const { leaseKey } = h.lease;
    if (this.held.get(leaseKey) !== h) return;
    this.held.delete(leaseKey);
    const status = h.worker.status();
    if (status.state === 'failed') {
      const failures = (this.quarantined.get(leaseKey)?.failures ?? 0) + 1;
      const forMs = Math.min(QUARANTINE_MAX_MS, this.options.failoverMs * 6 * 2 ** (failures - 1));
      this.quarantined.set(leaseKey, {
        shardId: leaseKey,
        reason: status.failure ?? 'failed',
        failures,
        until: this.now() + forMs,
      });
      this.options.log.error(
        `${leaseKey}: released and not taken again by this instance for ${Math.round(forMs / 1000)} s: ${status.failure}`,
      );
    }
    if (this.stopped) return;
    void this.store
      .release(h.lease)
      .catch((error: Error) =>
        this.options.log.warn(`${leaseKey}: release failed: ${error.name}: ${error.message}`),
      );
  }

  private drop(h: Held): void {
    // A renewal that lands late must not drop the lease this instance has taken again since.
    if (this.held.get(h.lease.leaseKey) === h) this.held.delete(h.lease.leaseKey);
    h.worker.stop();
  }
}
