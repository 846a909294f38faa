import { Injectable, Logger } from '@nestjs/common';
import { AppError, ErrorCode } from '../common/app-error';
import { validateMeasurementBody } from '../common/measurement-validation';
import { normaliseMeasurement } from '../domain/measurement';
import { KinesisProducerService } from '../ingestion/kinesis-producer.service';
import { DeadLetterEntry, DeadLetterRepository, DLQ_KIND } from './dead-letter.repository';
import { DeadLetterReason } from './record-decoder';

const encodeCursor = (key: Record<string, unknown>) =>
  Buffer.from(JSON.stringify(key)).toString('base64url');

function decodeCursor(cursor: string): Record<string, unknown> {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    const valid =
      key !== null &&
      typeof key === 'object' &&
      Object.keys(key).sort().join() === 'failed_at,id,kind' &&
      key.kind === DLQ_KIND &&
      typeof key.id === 'string' &&
      typeof key.failed_at === 'string';
    if (valid) return key;
  } catch {
    // reported below
  }
  throw new AppError(ErrorCode.ValidationFailed, 'invalid cursor', [
    'cursor must be a next_cursor returned by GET /dlq',
  ]);
}

/** The operator's view of the dead-letter queue: inspect, redrive (optionally corrected), delete. */
@Injectable()
export class DlqService {
  private readonly logger = new Logger(DlqService.name);

  constructor(
    private readonly deadLetters: DeadLetterRepository,
    private readonly producer: KinesisProducerService,
  ) {}

  async list(limit: number, reason?: DeadLetterReason, cursor?: string) {
    const page = await this.deadLetters.list(
      limit,
      reason,
      cursor ? decodeCursor(cursor) : undefined,
    );
    return { items: page.items, next_cursor: page.next ? encodeCursor(page.next) : null };
  }

  async get(id: string): Promise<DeadLetterEntry> {
    const entry = await this.deadLetters.get(id);
    if (!entry) throw new AppError(ErrorCode.NotFound, `no dead-letter entry ${id}`);
    return entry;
  }

  /**
   * Puts the record back on the stream: the payload as received, or `body.payload` validated like
   * POST /measurements. Resolves once Kinesis acknowledged it.
   */
  async redrive(id: string, body: unknown): Promise<{ id: string; status: 'redriven' }> {
    const corrected = this.correctedPayload(body);
    const entry = await this.get(id);
    let record: { data: Uint8Array; partitionKey: string };
    if (corrected) {
      const measurement = normaliseMeasurement(corrected, new Date());
      record = {
        data: Buffer.from(JSON.stringify(measurement)),
        partitionKey: measurement.city_id,
      };
    } else {
      if (entry.payload_truncated) {
        throw new AppError(
          ErrorCode.Conflict,
          'the stored payload was truncated; send a corrected payload',
        );
      }
      record = {
        data: Buffer.from(entry.payload, entry.payload_encoding === 'base64' ? 'base64' : 'utf8'),
        partitionKey: entry.partition_key || 'redrive',
      };
    }
    // The pointer is written first, so a record that fails again at once finds its entry; the
    // entry says `redriven` only once Kinesis took the record.
    if (!(await this.deadLetters.prepareRedrive(id, record.data)))
      throw new AppError(ErrorCode.NotFound, `no dead-letter entry ${id}`);
    try {
      await this.producer.send([record]);
    } catch (error) {
      // Best effort: at worst a later identical record is matched to this entry.
      await this.deadLetters
        .cancelRedrive(id)
        .catch((cancel: Error) =>
          this.logger.warn(
            `${id}: redrive not sent, and its mark could not be undone: ${cancel.message}`,
          ),
        );
      throw error;
    }
    await this.deadLetters.markRedriven(id);
    return { id, status: 'redriven' };
  }

  async delete(id: string): Promise<void> {
    if (!(await this.deadLetters.delete(id)))
      throw new AppError(ErrorCode.NotFound, `no dead-letter entry ${id}`);
  }

  private correctedPayload(body: unknown) {
    if (body === undefined || body === null) return undefined;
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', [
        'body must be a JSON object',
      ]);
    }
    const { payload, ...rest } = body as Record<string, unknown>;
    const unknown = Object.keys(rest).map((key) => `${key.slice(0, 64)} is not an allowed field`);
    if (unknown.length > 0)
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', unknown);
    if (payload === undefined) return undefined;
    if (Array.isArray(payload)) {
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', [
        'payload must be one measurement',
      ]);
    }
    const result = validateMeasurementBody(payload);
    if (!result.ok) {
      throw new AppError(
        ErrorCode.ValidationFailed,
        'validation failed',
        result.errors.map((e) => `payload.${e}`),
      );
    }
    return result.items[0];
  }
}
