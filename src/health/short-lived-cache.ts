/**
 * Keeps the result of `load` until `ttlMs` after that load started (so nothing served is older
 * than that); callers arriving while a load is in flight share it. A rejected load is not kept.
 */
export class ShortLivedCache<T> {
  private kept?: { value: T; startedAt: number };
  private inFlight?: Promise<T>;

  constructor(
    private readonly ttlMs: number,
    private readonly load: () => Promise<T>,
    // Monotonic: a wall clock stepped back must not keep an old answer.
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(): Promise<T> {
    if (this.kept && this.now() - this.kept.startedAt < this.ttlMs)
      return Promise.resolve(this.kept.value);
    if (!this.inFlight) {
      const startedAt = this.now();
      this.inFlight = this.load().then(
        (value) => {
          this.kept = { value, startedAt };
          this.inFlight = undefined;
          return value;
        },
        (error: unknown) => {
          this.inFlight = undefined;
          throw error;
        },
      );
    }
    return this.inFlight;
  }
}
