import { marshall } from '@aws-sdk/util-dynamodb';
import fc from 'fast-check';
import { DOCUMENT_MARSHALLING } from './aws-clients';
import {
  BatchExecuteCall,
  BatchWriteCall,
  combinedStatements,
  CombiningWriter,
  marshallItem,
  Put,
  toPut,
} from './dynamodb-calls';

/** BatchWriteItem on a table in memory; each call can be held open, or failed, by the test. */
class FakeTable {
  readonly calls: string[][] = [];
  /** Each call's `withoutBytes`. */
  readonly withoutBytes: (boolean | undefined)[] = [];
  readonly stored = new Set<string>();
  private readonly held: { release(error?: Error): void }[] = [];
  hold = false;

  readonly batchWrite: BatchWriteCall = {
    send: async (input, options) => {
      this.withoutBytes.push(options?.withoutBytes);
      const ids = input.RequestItems!.t.map((r) => r.PutRequest!.Item!.id.S!);
      if (new Set(ids).size !== ids.length) throw new Error('ValidationException: duplicate keys');
      this.calls.push(ids);
      if (this.hold)
        await new Promise<void>((resolve, reject) =>
          this.held.push({ release: (error) => (error ? reject(error) : resolve()) }),
        );
      for (const id of ids) this.stored.add(id);
      return { UnprocessedItems: {} };
    },
  };

  /** Lets the oldest held call answer (or fail). */
  release(error?: Error): void {
    this.held.shift()!.release(error);
  }

  get inFlight(): number {
    return this.held.length;
  }
}

const items = (prefix: string, n: number): Put[] =>
  Array.from({ length: n }, (_, i) => toPut({ id: `${prefix}${i}` }));
const idOf = ({ item }: Put) => item.id.S!;
const flush = () => new Promise((resolve) => setImmediate(resolve));
const settled = (p: Promise<void>) => {
  const state = { done: false, error: undefined as unknown };
  p.then(
    () => (state.done = true),
    (error: unknown) => {
      state.done = true;
      state.error = error;
    },
  );
  return state;
};

describe('CombiningWriter', () => {
  let table: FakeTable;
  let writer: CombiningWriter;
  beforeEach(() => {
    table = new FakeTable();
    writer = new CombiningWriter(table.batchWrite, 't', 16, idOf);
  });
  /** Holds every call from now on, and leaves one combined put (of `a0`) in flight. */
  const oneCombinedPutInFlight = async () => {
    table.hold = true;
    void writer.put(items('a', 1));
    await flush();
  };

  it('puts a lone caller at once, and the rests that gather behind a put in flight in one call', async () => {
    table.hold = true;
    const first = settled(writer.put(items('a', 3)));
    await flush();
    expect(table.calls).toEqual([['a0', 'a1', 'a2']]);

    const others = ['b', 'c', 'd'].map((p) => settled(writer.put(items(p, 4))));
    await flush();
    expect(table.calls).toHaveLength(1);

    table.release();
    await flush();
    expect(first).toEqual({ done: true, error: undefined });
    expect(others.map((o) => o.done)).toEqual([false, false, false]);
    expect(table.calls).toHaveLength(2);
    expect(table.calls[1]).toHaveLength(12);

    table.release();
    await flush();
    expect(others.map((o) => o.done)).toEqual([true, true, true]);
    expect(table.stored.size).toBe(15);
  });

  it('sends full batches of 25 at once, not behind a combined put in flight; the caller settles when all of its items are stored', async () => {
    await oneCombinedPutInFlight();
    const big = settled(writer.put(items('b', 53)));
    await flush();
    // Two full batches went at once; the 3 left wait for the combined put in flight.
    expect(table.calls.map((c) => c.length)).toEqual([1, 25, 25]);
    table.release();
    table.release();
    table.release();
    await flush();
    expect(big.done).toBe(false);
    expect(table.calls.map((c) => c.length)).toEqual([1, 25, 25, 3]);
    table.release();
    await flush();
    expect(big).toEqual({ done: true, error: undefined });
    expect(table.stored.size).toBe(54);
  });

  it('fails every caller of a failed combined put, and the next put works', async () => {
    await oneCombinedPutInFlight();
    const b = settled(writer.put(items('b', 2)));
    const c = settled(writer.put(items('c', 2)));
    table.release();
    await flush();
    table.release(new Error('throttled'));
    await flush();
    expect([b.error, c.error]).toEqual([new Error('throttled'), new Error('throttled')]);

    table.hold = false;
    await writer.put(items('b', 2));
    expect(table.stored.has('b1')).toBe(true);
  });

  it('puts an item that two callers hold once in a combined call', async () => {
    await oneCombinedPutInFlight();
    const one = settled(writer.put([toPut({ id: 'same' }), toPut({ id: 'x' })]));
    const two = settled(writer.put([toPut({ id: 'same' })]));
    table.release();
    await flush();
    expect(table.calls[1].sort()).toEqual(['same', 'x']);
    table.release();
    await flush();
    expect([one, two]).toEqual([
      { done: true, error: undefined },
      { done: true, error: undefined },
    ]);
  });

  it('a caller whose full batch fails rejects only once its rest has settled too', async () => {
    await oneCombinedPutInFlight();
    const big = settled(writer.put(items('b', 26)));
    await flush();
    expect(table.inFlight).toBe(2);
    table.release(); // a0
    await flush();
    table.release(new Error('full batch failed'));
    await flush();
    expect(big.done).toBe(false);
    table.release();
    await flush();
    expect(big).toEqual({ done: true, error: new Error('full batch failed') });
  });
});

describe('combinedStatements', () => {
  /** Each statement is its item's key; a statement named `bad…` is refused, a call holding `fail…` fails. */
  const calls: string[][] = [];
  const execute: BatchExecuteCall = {
    send: async ({ Statements = [] }) => {
      const keys = Statements.map((s) => s.Statement!);
      calls.push(keys);
      await Promise.resolve();
      if (keys.some((k) => k.startsWith('fail'))) throw new Error('reset');
      return {
        Responses: keys.map((k) =>
          k.startsWith('bad') ? { Error: { Code: 'ConditionalCheckFailed' } } : {},
        ),
      };
    },
  };
  const statement = (key: string) => ({ key, statement: { Statement: key } });
  beforeEach(() => (calls.length = 0));

  it('sends 25 statements a call, each answering its own outcome', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => (i === 30 ? 'bad30' : `k${i}`));
    const outcomes = await combinedStatements(execute, 16).submit(keys.map(statement));
    expect(calls.map((c) => c.length)).toEqual([25, 25, 10]);
    expect(outcomes).toHaveLength(60);
    expect(outcomes[30]).toEqual({ error: { Code: 'ConditionalCheckFailed' } });
    expect(outcomes.filter((o) => 'error' in o && o.error)).toHaveLength(1);
  });

  it('puts statements on one item in separate calls, the earlier one first', async () => {
    const outcomes = await combinedStatements(execute, 16).submit(
      ['a', 'b', 'a', 'c', 'a'].map(statement),
    );
    expect(calls).toEqual([['a', 'b', 'c'], ['a'], ['a']]);
    expect(outcomes).toEqual([{}, {}, {}, {}, {}].map(() => ({ error: undefined })));
  });

  it("answers a failed call's failure for its own statements only", async () => {
    const keys = ['fail', ...Array.from({ length: 30 }, (_, i) => `k${i}`)];
    const outcomes = await combinedStatements(execute, 1).submit(keys.map(statement));
    expect(calls.map((c) => c.length)).toEqual([25, 6]);
    expect(outcomes.slice(0, 25)).toEqual(
      keys.slice(0, 25).map(() => ({ failure: new Error('reset') })),
    );
    expect(outcomes.slice(25)).toEqual(keys.slice(25).map(() => ({ error: undefined })));
  });
});

describe('putAll through CombiningWriter: the walk for bytes', () => {
  it('is skipped for calls of flat items only, and kept for a call with an item that is not flat', async () => {
    const table = new FakeTable();
    const writer = new CombiningWriter(table.batchWrite, 't', 1, idOf);
    await writer.put(items('a', 30));
    await writer.put([toPut({ id: 'b0', raw: new Uint8Array([1, 2]) }), ...items('b', 3).slice(1)]);
    await writer.put([toPut({ id: 'c0', nested: { n: 1 } })]);
    expect(table.calls.map((ids) => ids.length)).toEqual([25, 5, 3, 1]);
    expect(table.withoutBytes).toEqual([true, true, false, false]);
  });
});

describe('marshallItem', () => {
  /** What a marshaller makes of `values`, or the error it throws. */
  const outcome =
    (marshaller: (values: Record<string, unknown>) => unknown) =>
    (values: Record<string, unknown>) => {
      try {
        return marshaller(values);
      } catch (error) {
        return { threw: (error as Error).message };
      }
    };
  const generic = outcome((values) => marshall(values, DOCUMENT_MARSHALLING));
  const mine = outcome(marshallItem);
  const flat = fc.oneof(
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.constantFrom(2 ** 53 - 1, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, -0),
    fc.boolean(),
    fc.constant(undefined),
  );
  const nested = fc.oneof(
    fc.constant(null),
    fc.dictionary(fc.string(), fc.string()),
    fc.array(fc.integer()),
    fc.uint8Array({ minLength: 1 }).map((bytes) => Buffer.from(bytes)),
  );

  it('marshals items of strings, numbers and booleans as the document client does', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), flat), (values) => {
        expect(mine(values)).toEqual(generic(values));
      }),
    );
  });

  it('hands an item with any other value to the generic marshaller, whole', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), flat), fc.string(), nested, (values, key, value) => {
        const item = { ...values, [key]: value };
        expect(mine(item)).toEqual(generic(item));
      }),
    );
  });

  it('marshals a stored measurement', () => {
    const stored = {
      city_id: 'delhi',
      pm25_value: 12.5,
      ttl: 1_790_000_000,
      late: false,
      x: undefined,
    };
    expect(marshallItem(stored)).toEqual({
      city_id: { S: 'delhi' },
      pm25_value: { N: '12.5' },
      ttl: { N: '1790000000' },
      late: { BOOL: false },
    });
  });
});
