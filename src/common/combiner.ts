interface Gathered<T, R> {
  entries: T[];
  settle(results: R[] | undefined, error?: unknown): void;
}

/**
 * Sends the entries of many callers (the shards of this instance) together: while one send is
 * in flight, what callers submit gathers, and goes in one send when it ends; with nothing in
 * flight a caller's entries go at once. So a few entries from each of 64 shards share calls
 * instead of taking one each, and no caller waits longer than the send ahead of it. A caller's
 * promise settles with the results of its own entries, in its order, once the send that held
 * them has ended (or rejects with that send's failure), never before.
 */
export class Combiner<T, R> {
  private waiting: Gathered<T, R>[] = [];
  private sending = false;

  /** `send` answers one result per entry, in the order it was given them. */
  constructor(private readonly send: (entries: T[]) => Promise<R[]>) {}

  submit(entries: T[]): Promise<R[]> {
    return new Promise<R[]>((resolve, reject) => {
      this.waiting.push({
        entries,
        settle: (results, error) => (results ? resolve(results) : reject(error)),
      });
      if (!this.sending) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.sending = true;
    while (this.waiting.length > 0) {
      const group = this.waiting;
      this.waiting = [];
      let results: R[] | undefined;
      let error: unknown;
      try {
        results = await this.send(group.flatMap((gathered) => gathered.entries));
      } catch (e) {
        error = e ?? new Error('combined send failed');
      }
      let offset = 0;
      for (const { entries, settle } of group) {
        settle(results?.slice(offset, offset + entries.length), error);
        offset += entries.length;
      }
    }
    this.sending = false;
  }
}
