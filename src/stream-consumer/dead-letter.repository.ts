import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';
import {
  batchWriteCall,
  BatchWriteCall,
  getAll,
  putAll,
  queryPage,
  runLimited,
  toPut,
} from '../infra/aws/dynamodb-calls';
import { DeadLetterReason, encodePayload, StreamRecord } from './record-decoder';

// DynamoDB items are at most 400 KB; the rest of the entry needs a few KB.
const MAX_PAYLOAD_BYTES = 350 * 1024;
/** Entries carry `kind` so that the newest-first index holds them and not the redrive pointers. */
export const DLQ_KIND = 'entry';
export const DLQ_INDEX = 'by_failed_at';
const POINTER_PREFIX = 'redrive#';

export interface DeadLetter {
  record: StreamRecord;
  shardId: string;
  reason: DeadLetterReason;
  message: string;
}

export interface DeadLetterEntry {
  id: string;
  reason: DeadLetterReason;
  error_message: string;
  failed_at: string;
  stream: string;
  shard_id: string;
  sequence_number: string;
  /** A user record of a KPL aggregate: its index in the aggregate. */
  sub_sequence_number?: number;
  partition_key: string;
  attempts: number;
  status: 'pending' | 'redriven';
  payload: string;
  payload_encoding: 'utf8' | 'base64';
  payload_truncated: boolean;
  payload_bytes: number;
  redriven_at?: string;
}

export interface DeadLetterCount {
  reason: DeadLetterReason;
  status: DeadLetterEntry['status'];
  count: number;
}

/** Cuts a payload to what fits in one item, on a UTF-8 boundary for text. */
function fitPayload(payload: string): { payload: string; truncated: boolean } {
  const bytes = Buffer.from(payload);
  if (bytes.byteLength <= MAX_PAYLOAD_BYTES) return { payload, truncated: false };
  let end = MAX_PAYLOAD_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return { payload: bytes.subarray(0, end).toString('utf8'), truncated: true };
}

/** Deterministic, so a record dead-lettered again after a crash overwrites its own entry. */
export function deadLetterId(
  stream: string,
  shardId: string,
  sequenceNumber: string,
  subSequenceNumber?: number,
): string {
  const userRecord = subSequenceNumber === undefined ? '' : `/${subSequenceNumber}`;
  return createHash('sha256')
    .update(`${stream}/${shardId}/${sequenceNumber}${userRecord}`)
    .digest('hex')
    .slice(0, 24);
}

/** The key of the pointer from a redriven record's exact bytes back to its entry. */
export const redriveKey = (data: Uint8Array) =>
  `${POINTER_PREFIX}${createHash('sha256').update(data).digest('hex')}`;

const INTERNAL = new Set(['kind', 'redrive_key', 'redrives']);
const toEntry = (item: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(item).filter(([k]) => !INTERNAL.has(k)),
  ) as unknown as DeadLetterEntry;

/**
 * The dead-letter table: one entry per poison record, with its payload as received. A redriven
 * record that fails again updates its entry (attempts + 1), found through a pointer keyed by the
 * SHA-256 of the bytes put back on the stream. The pointer lists every entry redriven with those
 * bytes, and an entry takes at most one failure per redrive (`attempts <= redrives`), so distinct
 * poison records with identical bytes keep entries of their own.
 */
@Injectable()
export class DeadLetterRepository {
  private readonly table: string;
  private readonly stream: string;
  private readonly batchWrite: BatchWriteCall;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.dlq;
    this.stream = config.stream.name;
    this.batchWrite = batchWriteCall(db);
  }

  /** Stores every entry or throws; the caller must not checkpoint past a record until it resolves. */
  async write(letters: DeadLetter[]): Promise<void> {
    const failedAt = new Date().toISOString();
    const items = letters.map((letter) => this.toItem(letter, failedAt));
    const pointers = await this.pointers(letters.map((l) => redriveKey(l.record.data)));
    const fresh: Record<string, unknown>[] = [];
    await runLimited(
      items.map((item, i) => ({
        item,
        entryIds: pointers.get(redriveKey(letters[i].record.data)),
      })),
      4,
      async ({ item, entryIds }) => {
        if (!entryIds || !(await this.failedAgain(entryIds, item))) fresh.push(item);
      },
    );
    // Payloads can be large: 25 items of at most 400 KB stay under BatchWriteItem's 16 MB.
    await putAll(this.batchWrite, this.table, fresh.map(toPut), 4);
  }

  /** Newest first; `reason` filters; the cursor is the opaque LastEvaluatedKey. */
  async list(
    limit: number,
    reason: DeadLetterReason | undefined,
    cursor: Record<string, unknown> | undefined,
  ): Promise<{ items: DeadLetterEntry[]; next?: Record<string, unknown> }> {
    const items: DeadLetterEntry[] = [];
    let startKey = cursor;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: DLQ_INDEX,
          KeyConditionExpression: 'kind = :kind',
          ...(reason ? { FilterExpression: 'reason = :reason' } : {}),
          ExpressionAttributeValues: {
            ':kind': DLQ_KIND,
            ...(reason ? { ':reason': reason } : {}),
          },
          ScanIndexForward: false,
          Limit: limit - items.length,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) items.push(toEntry(item));
      startKey = page.LastEvaluatedKey;
    } while (items.length < limit && startKey);
    return { items, next: startKey };
  }

  /**
   * Entries by reason and status, counted through the failed_at index (only two attributes read
   * back); stops at `max` entries and says whether more exist, so a flooded queue costs a bounded
   * read.
   */
  async count(max: number): Promise<{ counts: DeadLetterCount[]; capped: boolean }> {
    const { items, more } = await queryPage(
      this.db,
      {
        TableName: this.table,
        IndexName: DLQ_INDEX,
        KeyConditionExpression: 'kind = :kind',
        ProjectionExpression: 'reason, #status',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':kind': DLQ_KIND },
      },
      max,
    );
    const counts = new Map<string, DeadLetterCount>();
    for (const item of items) {
      const reason = item.reason as DeadLetterReason;
      const status = item.status as DeadLetterEntry['status'];
      const key = `${reason}/${status}`;
      const count = counts.get(key) ?? { reason, status, count: 0 };
      count.count += 1;
      counts.set(key, count);
    }
    return { counts: [...counts.values()], capped: more };
  }

  async get(id: string): Promise<DeadLetterEntry | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.table, Key: { id }, ConsistentRead: true }),
    );
    return Item && Item.kind === DLQ_KIND ? toEntry(Item) : undefined;
  }

  /**
   * Before the record goes back on the stream as `data`: the pointer from those bytes lists the
   * entry, and the entry awaits one more failure. Returns the entry's `attempts` at this point
   * (for `markRedriven`), or undefined when there is no such entry.
   */
  async prepareRedrive(id: string, data: Uint8Array): Promise<number | undefined> {
    const key = redriveKey(data);
    let attempts: number;
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { id },
          UpdateExpression: 'SET redrive_key = :key ADD redrives :one',
          ConditionExpression: 'attribute_exists(id) AND kind = :kind',
          ExpressionAttributeValues: { ':key': key, ':one': 1, ':kind': DLQ_KIND },
          ReturnValues: 'ALL_NEW',
        }),
      );
      attempts = Number(Attributes?.attempts);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id: key },
        UpdateExpression: 'ADD entries :id',
        ExpressionAttributeValues: { ':id': new Set([id]) },
      }),
    );
    return attempts;
  }

  /** Kinesis did not take the record: the entry no longer awaits its failure. */
  async cancelRedrive(id: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id },
        UpdateExpression: 'ADD redrives :minus',
        ConditionExpression: 'attribute_exists(id)',
        ExpressionAttributeValues: { ':minus': -1 },
      }),
    );
  }

  /**
   * Kinesis acknowledged the redriven record: the entry says `redriven`, unless the record has
   * already failed again (its attempts moved on since `prepareRedrive`), or the entry is gone.
   */
  async markRedriven(id: string, attemptsAtRedrive: number): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { id },
          UpdateExpression: 'SET #status = :redriven, redriven_at = :at',
          ConditionExpression: 'attribute_exists(id) AND attempts = :attempts',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':redriven': 'redriven',
            ':at': new Date().toISOString(),
            ':attempts': attemptsAtRedrive,
          },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  /** Deletes the entry and its redrive pointer; false when there was no such entry. */
  async delete(id: string): Promise<boolean> {
    const { Attributes } = await this.db.send(
      new DeleteCommand({ TableName: this.table, Key: { id }, ReturnValues: 'ALL_OLD' }),
    );
    if (typeof Attributes?.redrive_key === 'string') {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { id: Attributes.redrive_key },
          UpdateExpression: 'DELETE entries :id',
          ExpressionAttributeValues: { ':id': new Set([id]) },
        }),
      );
    }
    return Attributes?.kind === DLQ_KIND;
  }

  /** Redrive pointer key → the entries redriven with those bytes. */
  private async pointers(keys: string[]): Promise<Map<string, string[]>> {
    const found = new Map<string, string[]>();
    const unique = [...new Set(keys)].map((id) => ({ id }));
    for (const item of await getAll(this.db, this.table, unique)) {
      const entries = item.entries instanceof Set ? [...(item.entries as Set<string>)] : [];
      if (entries.length > 0) found.set(item.id as string, entries.sort());
    }
    return found;
  }

  /**
   * Records a redriven record that failed again on one of the entries it was redriven from:
   * attempts + 1, pending. Idempotent for the same stream record read twice. False when no entry
   * awaits this failure (then a new entry is written).
   */
  private async failedAgain(entryIds: string[], item: Record<string, unknown>): Promise<boolean> {
    const sub = item.sub_sequence_number;
    const sameRecord = (e: Record<string, unknown>) =>
      e.sequence_number === item.sequence_number && e.sub_sequence_number === sub;
    for (const entryId of entryIds) {
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { id: entryId },
            UpdateExpression:
              'SET attempts = attempts + :one, #status = :pending, reason = :reason, error_message = :message, ' +
              'failed_at = :at, shard_id = :shard, sequence_number = :seq, partition_key = :pk, payload = :payload, ' +
              'payload_encoding = :encoding, payload_truncated = :truncated, payload_bytes = :bytes' +
              (sub === undefined
                ? ' REMOVE redriven_at, sub_sequence_number'
                : ', sub_sequence_number = :sub REMOVE redriven_at'),
            ConditionExpression:
              'attribute_exists(id) AND attempts <= redrives AND ' +
              (sub === undefined
                ? 'sequence_number <> :seq'
                : 'NOT (sequence_number = :seq AND sub_sequence_number = :sub)'),
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: {
              ':one': 1,
              ':pending': 'pending',
              ':reason': item.reason,
              ':message': item.error_message,
              ':at': item.failed_at,
              ':shard': item.shard_id,
              ':seq': item.sequence_number,
              ':pk': item.partition_key,
              ':payload': item.payload,
              ':encoding': item.payload_encoding,
              ':truncated': item.payload_truncated,
              ':bytes': item.payload_bytes,
              ...(sub === undefined ? {} : { ':sub': sub }),
            },
          }),
        );
        return true;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
    // None awaited it: unless one of them already holds this very record (read twice).
    const entries = await getAll(
      this.db,
      this.table,
      entryIds.map((id) => ({ id })),
    );
    return entries.some(sameRecord);
  }

  private toItem(letter: DeadLetter, failedAt: string): Record<string, unknown> {
    const { record } = letter;
    const encoded = encodePayload(record.data);
    const { payload, truncated } = fitPayload(encoded.payload);
    return {
      id: deadLetterId(
        this.stream,
        letter.shardId,
        record.sequenceNumber,
        record.subSequenceNumber,
      ),
      kind: DLQ_KIND,
      reason: letter.reason,
      error_message: letter.message.slice(0, 2000),
      failed_at: failedAt,
      stream: this.stream,
      shard_id: letter.shardId,
      sequence_number: record.sequenceNumber,
      ...(record.subSequenceNumber === undefined
        ? {}
        : { sub_sequence_number: record.subSequenceNumber }),
      partition_key: record.partitionKey,
      attempts: 1,
      status: 'pending',
      payload,
      payload_encoding: encoded.payload_encoding,
      payload_truncated: truncated,
      payload_bytes: record.data.byteLength,
    };
  }
}
