import { Combiner } from './combiner';

/** A send that the test answers: each call is held until released (or failed). */
class HeldSend {
  readonly calls: string[][] = [];
  private readonly held: { release(error?: Error): void }[] = [];

  readonly send = (entries: string[]): Promise<string[]> => {
    this.calls.push(entries);
    return new Promise((resolve, reject) =>
      this.held.push({
        release: (error) => (error ? reject(error) : resolve(entries.map((e) => `${e}!`))),
      }),
    );
  };

  release(error?: Error): void {
    this.held.shift()!.release(error);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const settled = <T>(p: Promise<T>) => {
  const state: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(state, { done: true, value }),
    (error: unknown) => Object.assign(state, { done: true, error }),
  );
  return state;
};

describe('Combiner', () => {
  let send: HeldSend;
  let combiner: Combiner<string, string>;
  beforeEach(() => {
    send = new HeldSend();
    combiner = new Combiner(send.send);
  });

  it('sends a lone caller at once, and what gathers behind a send in flight in one send, each caller getting its own results', async () => {
    const a = settled(combiner.submit(['a1']));
    await tick();
    expect(send.calls).toEqual([['a1']]);
    const b = settled(combiner.submit(['b1', 'b2']));
    const c = settled(combiner.submit(['c1']));
    await tick();
    expect(send.calls).toHaveLength(1);

    send.release();
    await tick();
    expect(a).toEqual({ done: true, value: ['a1!'] });
    expect([b.done, c.done]).toEqual([false, false]);
    expect(send.calls[1]).toEqual(['b1', 'b2', 'c1']);

    send.release();
    await tick();
    expect(b).toEqual({ done: true, value: ['b1!', 'b2!'] });
    expect(c).toEqual({ done: true, value: ['c1!'] });
  });

  it("fails every caller of a failed send with its failure, and sends the next ones' entries after it", async () => {
    void combiner.submit(['a1']).catch(() => undefined);
    const b = settled(combiner.submit(['b1']));
    const c = settled(combiner.submit(['c1']));
    send.release(new Error('throttled'));
    await tick();
    expect(send.calls).toEqual([['a1'], ['b1', 'c1']]);
    send.release(new Error('reset'));
    await tick();
    expect([b.error, c.error]).toEqual([new Error('reset'), new Error('reset')]);

    const d = settled(combiner.submit(['d1']));
    await tick();
    send.release();
    await tick();
    expect(d).toEqual({ done: true, value: ['d1!'] });
  });
});
