import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';
import { runLimited } from '../speed-layer/speed-layer.repository';
import { DeadLetterReason, encodePayload, StreamRecord } from './record-decoder';

// DynamoDB items are at most 400 KB; the rest of the entry needs a few KB.
const MAX_PAYLOAD_BYTES = 350 * 1024;

/** Cuts a payload to what fits in one item, on a UTF-8 boundary for text. */
function fitPayload(payload: string): { payload: string; truncated: boolean } {
  const bytes = Buffer.from(payload);
  if (bytes.byteLength <= MAX_PAYLOAD_BYTES) return { payload, truncated: false };
  let end = MAX_PAYLOAD_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return { payload: bytes.subarray(0, end).toString('utf8'), truncated: true };
}

export interface DeadLetter {
  record: StreamRecord;
  shardId: string;
  reason: DeadLetterReason;
  message: string;
}

/** Deterministic, so a record dead-lettered again after a crash overwrites its own entry. */
export function deadLetterId(stream: string, shardId: string, sequenceNumber: string): string {
  return createHash('sha256')
    .update(`${stream}/${shardId}/${sequenceNumber}`)
    .digest('hex')
    .slice(0, 24);
}

/** The dead-letter table: one entry per poison record, with its payload as received. */
@Injectable()
export class DeadLetterRepository {
  private readonly table: string;
  private readonly stream: string;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.dlq;
    this.stream = config.stream.name;
  }

  /** Stores every entry or throws; the caller must not checkpoint past a record until it resolves. */
  async write(letters: DeadLetter[]): Promise<void> {
    const failedAt = new Date().toISOString();
    const items = letters.map((letter) => this.toItem(letter, failedAt));
    const chunks: (typeof items)[] = [];
    // Payloads can be large: keep each call under BatchWriteItem's 16 MB.
    for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
    await runLimited(chunks, 4, async (chunk) => {
      let pending: unknown[] = chunk.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 10) throw new Error('dead-letter entries still unprocessed');
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * 50 * 2 ** attempt));
        const output = await this.db.send(
          new BatchWriteCommand({ RequestItems: { [this.table]: pending as never } }),
        );
        pending = output.UnprocessedItems?.[this.table] ?? [];
      }
    });
  }

  private toItem(letter: DeadLetter, failedAt: string): Record<string, unknown> {
    const { record } = letter;
    const encoded = encodePayload(record.data);
    const { payload, truncated } = fitPayload(encoded.payload);
    return {
      id: deadLetterId(this.stream, letter.shardId, record.sequenceNumber),
      reason: letter.reason,
      error_message: letter.message.slice(0, 2000),
      failed_at: failedAt,
      stream: this.stream,
      shard_id: letter.shardId,
      sequence_number: record.sequenceNumber,
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
