/** How long a past event time stays reserved: beyond the late records' 10 minutes back. */
const PAST_KEPT_MS = 11 * 60_000;

/**
 * Event times for generated load that never give two measurements of one city the same
 * millisecond, whatever the rate. The message id is derived from the city, the event time and the
 * station, so two such measurements would be one measurement sent twice: the service stores it
 * once (the second write replaces the first) and counts it once.
 *
 * In-order measurements take even milliseconds, strictly increasing per city from the clock on (a
 * city is given far fewer than 500 a second, so they do not run ahead of it). Measurements sent
 * late or out of order take odd milliseconds at or before the time asked for, skipping those the
 * city already used.
 */
export class EventTimes {
  private readonly lastInOrder = new Map<string, number>();
  private readonly usedPast = new Map<string, Set<number>>();
  /** Past times in the order they were taken, to forget them once older than PAST_KEPT_MS. */
  private readonly pastQueue: { cityId: string; at: number }[] = [];

  /** An in-order event time for `cityId` at or just after `now` (epoch ms). */
  next(cityId: string, now: number): number {
    const even = now - (now % 2);
    const at = Math.max(even, (this.lastInOrder.get(cityId) ?? -Infinity) + 2);
    this.lastInOrder.set(cityId, at);
    return at;
  }

  /** A past event time for `cityId` at or just before `at` (epoch ms), `now` being the clock. */
  past(cityId: string, at: number, now: number): number {
    this.forget(now);
    let used = this.usedPast.get(cityId);
    if (!used) this.usedPast.set(cityId, (used = new Set()));
    let odd = at - (at % 2 === 0 ? 1 : 0);
    while (used.has(odd)) odd -= 2;
    used.add(odd);
    this.pastQueue.push({ cityId, at: odd });
    return odd;
  }

  private forget(now: number): void {
    while (this.pastQueue.length > 0 && this.pastQueue[0].at < now - PAST_KEPT_MS) {
      const { cityId, at } = this.pastQueue.shift()!;
      this.usedPast.get(cityId)?.delete(at);
    }
  }
}
