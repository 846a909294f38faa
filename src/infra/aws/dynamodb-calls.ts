import {
  AttributeValue,
  BatchExecuteStatementInput,
  BatchExecuteStatementOutput,
  BatchStatementError,
  BatchStatementRequest,
  BatchWriteItemInput,
  BatchWriteItemOutput,
  TransactWriteItem,
  TransactWriteItemsInput,
  TransactWriteItemsOutput,
  WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  QueryCommand,
  QueryCommandInput,
  TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { backoffDelay, BackoffPolicy, sleep } from '../../common/backoff';
import { Combiner } from '../../common/combiner';
import { DirectCall, dynamoDbDirectCall } from './direct-call';
import { DOCUMENT_MARSHALLING } from './aws-clients';

const BATCH_WRITE_MAX = 25;
const BATCH_GET_MAX = 100;
/** BatchExecuteStatement takes at most 25 statements. */
const STATEMENTS_PER_CALL = 25;
/** DynamoDB answers UnprocessedItems/Keys when throttled: wait before asking again. */
const UNPROCESSED_BACKOFF: BackoffPolicy = { baseMs: 20, capMs: 1000 };
const UNPROCESSED_ATTEMPTS = 10;

/**
 * Runs `task` over `items` with at most `limit` at a time. After a failure no new task starts,
 * and the call rejects with the first failure only once every task in flight has settled, so
 * nothing it started can land after it returned.
 */
export async function runLimited<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      try {
        await task(items[next++]);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
}

class UnprocessedError extends Error {
  constructor(what: string, count: number) {
    super(`${count} ${what} still unprocessed after ${UNPROCESSED_ATTEMPTS} attempts`);
    this.name = 'UnprocessedError';
  }
}

/** Calls `send` with `pending` until it reports nothing unprocessed, backing off in between. */
async function untilProcessed<T>(
  what: string,
  pending: T[],
  send: (pending: T[]) => Promise<T[]>,
): Promise<void> {
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt >= UNPROCESSED_ATTEMPTS) throw new UnprocessedError(what, pending.length);
    if (attempt > 0) await sleep(backoffDelay(attempt, UNPROCESSED_BACKOFF));
    pending = await send(pending);
  }
}

/** BatchWriteItem, sent as the wire's JSON (items as attribute values). */
export type BatchWriteCall = Pick<DirectCall<BatchWriteItemInput, BatchWriteItemOutput>, 'send'>;

/**
 * BatchWriteItem without the SDK's command stack (see `direct-call.ts`): the most frequent
 * DynamoDB call, one per 25 stored measurements.
 */
export const batchWriteCall = (db: DynamoDBDocumentClient): BatchWriteCall =>
  dynamoDbDirectCall('BatchWriteItem', db);

/** An item of TransactWriteItems as the document client takes it: plain values. */
export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** TransactWriteItems, sent as the wire's JSON (see `marshallTransactItem`). */
export type TransactWriteCall = Pick<
  DirectCall<TransactWriteItemsInput, TransactWriteItemsOutput>,
  'send'
>;

/**
 * TransactWriteItems without the SDK's command stack: a shard's commit (results, checkpoint,
 * state), every flush of every shard. Its refusal is a `TransactionCanceledException` carrying
 * `CancellationReasons` as the service answered them (items as attribute values).
 */
export const transactWriteCall = (db: DynamoDBDocumentClient): TransactWriteCall =>
  dynamoDbDirectCall('TransactWriteItems', db);

/**
 * An item as the document client marshals it. Items of strings, finite numbers, booleans and
 * undefined (left out) are marshalled here directly, eight times faster than the generic
 * marshaller on a stored measurement (4.5 against 0.56 µs); any other value (a map, a list, bytes,
 * null, a number it would refuse) sends the whole item to `marshall`.
 */
export function marshallItem(values: Record<string, unknown>): Record<string, AttributeValue> {
  return marshallFlatItem(values) ?? marshall(values, DOCUMENT_MARSHALLING);
}

/**
 * The item of `marshallItem` when all of its values are strings, finite numbers, booleans or
 * undefined (so it holds no bytes); else undefined.
 */
export function marshallFlatItem(
  values: Record<string, unknown>,
): Record<string, AttributeValue> | undefined {
  const item: Record<string, AttributeValue> = {};
  for (const key in values) {
    const value = values[key];
    if (typeof value === 'string') item[key] = { S: value };
    else if (typeof value === 'number' && Math.abs(value) <= Number.MAX_SAFE_INTEGER)
      item[key] = { N: String(value) };
    else if (typeof value === 'boolean') item[key] = { BOOL: value };
    else if (value !== undefined) return undefined;
  }
  return item;
}

const attributes = (values?: Record<string, unknown>) => values && marshallItem(values);

/** The values of one operation of a transaction item, as the document client takes them. */
type OperationValues = {
  Item?: Record<string, unknown>;
  Key?: Record<string, unknown>;
  ExpressionAttributeValues?: Record<string, unknown>;
};

/**
 * A transaction item with its item, key and expression values marshalled as the document client
 * does, whichever its operation (Put, Update, Delete, ConditionCheck); what it does not have
 * stays undefined, and is left out of the JSON.
 */
export function marshallTransactItem(item: TransactItem): TransactWriteItem {
  const wire: Record<string, object> = {};
  for (const [operation, values] of Object.entries(item) as [string, OperationValues?][]) {
    if (!values) continue;
    const { Item, Key, ExpressionAttributeValues, ...rest } = values;
    wire[operation] = {
      ...rest,
      Item: attributes(Item),
      Key: attributes(Key),
      ExpressionAttributeValues: attributes(ExpressionAttributeValues),
    };
  }
  return wire as TransactWriteItem;
}

/** An item as BatchWriteItem puts it: marshalled, and whether it surely holds no bytes. */
export interface Put {
  item: Record<string, AttributeValue>;
  withoutBytes: boolean;
}

/** The put of an item, marshalled as the document client marshals it (`marshallItem`). */
export function toPut(values: Record<string, unknown>): Put {
  const flat = marshallFlatItem(values);
  return { item: flat ?? marshall(values, DOCUMENT_MARSHALLING), withoutBytes: flat !== undefined };
}

/**
 * Puts every item with BatchWriteItem, 25 a call and `concurrency` calls at a time, retrying
 * UnprocessedItems with back-off; throws when some are still unprocessed after 10 tries.
 */
export async function putAll(
  batchWrite: BatchWriteCall,
  table: string,
  puts: Put[],
  concurrency: number,
): Promise<void> {
  const chunks: Put[][] = [];
  for (let i = 0; i < puts.length; i += BATCH_WRITE_MAX)
    chunks.push(puts.slice(i, i + BATCH_WRITE_MAX));
  await runLimited(chunks, concurrency, (chunk) => {
    // The walk for bytes only where an item may hold them; what the service hands back
    // unprocessed (its JSON) holds none.
    const withoutBytes = chunk.every((put) => put.withoutBytes);
    const requests = chunk.map((put): WriteRequest => ({ PutRequest: { Item: put.item } }));
    return untilProcessed('item(s)', requests, async (pending) => {
      const output = await batchWrite.send(
        { RequestItems: { [table]: pending } },
        { withoutBytes: withoutBytes || pending !== requests },
      );
      return output.UnprocessedItems?.[table] ?? [];
    });
  });
}

/**
 * Puts items for many callers (the shards of this instance) into one table, combining what does
 * not fill a BatchWriteItem: each caller's full batches of 25 go at once, and the rest joins
 * the other callers' rest in a `Combiner`. A caller's promise settles when its own items are
 * stored (or failed with the call that held them), never before.
 */
export class CombiningWriter {
  private readonly rest: Combiner<Put, void>;

  constructor(
    private readonly batchWrite: BatchWriteCall,
    private readonly table: string,
    private readonly concurrency: number,
    /** The item's key as text: items of one key from two callers are put once. */
    keyOf: (put: Put) => string,
  ) {
    this.rest = new Combiner(async (puts) => {
      const unique = new Map<string, Put>();
      for (const put of puts) unique.set(keyOf(put), put);
      await putAll(batchWrite, table, [...unique.values()], concurrency);
      return new Array<void>(puts.length);
    });
  }

  async put(puts: Put[]): Promise<void> {
    const full = puts.length - (puts.length % BATCH_WRITE_MAX);
    const writes: Promise<unknown>[] = [];
    if (full > 0)
      writes.push(putAll(this.batchWrite, this.table, puts.slice(0, full), this.concurrency));
    if (full < puts.length) writes.push(this.rest.submit(puts.slice(full)));
    // Like runLimited: settle only when nothing started for this caller can still land.
    const failure = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;
  }
}

/** BatchExecuteStatement, sent as the wire's JSON (parameters as attribute values). */
export type BatchExecuteCall = Pick<
  DirectCall<BatchExecuteStatementInput, BatchExecuteStatementOutput>,
  'send'
>;

/** A PartiQL write for a combined call, with the key of the item it writes. */
export interface KeyedStatement {
  key: string;
  statement: BatchStatementRequest;
}

/** A statement's outcome: its error as the service answered it, or the failure of its call. */
export type StatementOutcome = { error?: BatchStatementError } | { failure: unknown };

/**
 * BatchExecuteStatement for many callers (`Combiner`): the statements gathered go 25 a call,
 * `concurrency` calls at a time, each answering its own outcome. Statements on one item never
 * share a call: a later one goes in a later round, after the earlier one's call has ended.
 */
export function combinedStatements(
  execute: BatchExecuteCall,
  concurrency: number,
): Combiner<KeyedStatement, StatementOutcome> {
  return new Combiner(async (statements) => {
    const outcomes = new Array<StatementOutcome>(statements.length);
    let left = statements.map((_, i) => i);
    while (left.length > 0) {
      const keys = new Set<string>();
      const now: number[] = [];
      const later: number[] = [];
      for (const i of left) {
        const { key } = statements[i];
        (keys.has(key) ? later : now).push(i);
        keys.add(key);
      }
      const calls: number[][] = [];
      for (let i = 0; i < now.length; i += STATEMENTS_PER_CALL)
        calls.push(now.slice(i, i + STATEMENTS_PER_CALL));
      await runLimited(calls, concurrency, async (call) => {
        try {
          const { Responses = [] } = await execute.send({
            Statements: call.map((i) => statements[i].statement),
          });
          call.forEach((i, j) => (outcomes[i] = { error: Responses[j]?.Error }));
        } catch (failure) {
          for (const i of call) outcomes[i] = { failure };
        }
      });
      left = later;
    }
    return outcomes;
  });
}

/** Reads the items of `keys` (consistently) with BatchGetItem, 100 a call, retrying UnprocessedKeys. */
export async function getAll(
  db: DynamoDBDocumentClient,
  table: string,
  keys: Record<string, unknown>[],
): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_MAX) {
    await untilProcessed('key(s)', keys.slice(i, i + BATCH_GET_MAX), async (pending) => {
      const output = await db.send(
        new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }),
      );
      found.push(...(output.Responses?.[table] ?? []));
      return (output.UnprocessedKeys?.[table]?.Keys ?? []) as typeof pending;
    });
  }
  return found;
}

/**
 * One page of a query: up to `limit` items from `startKey` on, reading on past pages a filter
 * emptied, and one item more to tell whether another page exists (`more`).
 */
export async function queryPage(
  db: DynamoDBDocumentClient,
  input: Omit<QueryCommandInput, 'Limit' | 'ExclusiveStartKey'>,
  limit: number,
  startKey?: Record<string, unknown>,
): Promise<{ items: Record<string, unknown>[]; more: boolean }> {
  const raw: Record<string, unknown>[] = [];
  let exclusiveStartKey = startKey;
  do {
    const page = await db.send(
      new QueryCommand({ ...input, Limit: limit + 1, ExclusiveStartKey: exclusiveStartKey }),
    );
    raw.push(...(page.Items ?? []));
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (raw.length <= limit && exclusiveStartKey);
  return { items: raw.slice(0, limit), more: raw.length > limit };
}
