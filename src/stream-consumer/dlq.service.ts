import { Injectable, Logger } from '@nestjs/common';
import { AppError, ErrorCode } from '../common/app-error';
import { CursorCodec, refuseCursor } from '../common/cursor';
import { validateMeasurementBody } from '../common/measurement-validation';
import { normaliseMeasurement } from '../domain/measurement';
import { KinesisProducerService } from '../ingestion/kinesis-producer.service';
import { DeadLetterEntry, DeadLetterRepository, DLQ_KIND } from './dead-letter.repository';
import { DlqEntryDto, DlqListDto, toDlqEntryDto } from './dto/dlq.dto';
import { DeadLetterReason } from './record-decoder';

/** The operator's view of the dead-letter queue: inspect, redrive (optionally corrected), delete. */
@Injectable()
export class DlqService {
  private readonly logger = new Logger(DlqService.name);

  constructor(
    private readonly deadLetters: DeadLetterRepository,
    private readonly producer: KinesisProducerService,
    private readonly cursors: CursorCodec,
  ) {}

  /** A page, newest first; the cursor is signed and scoped to the reason filter. */
  async list(limit: number, reason?: DeadLetterReason, cursor?: string): Promise<DlqListDto> {
    const scope = { route: 'dlq', reason: reason ?? '' };
    let startKey: Record<string, unknown> | undefined;
    if (cursor) {
      const { id, failed_at: failedAt } = this.cursors.verify(cursor, scope);
      if (typeof id !== 'string' || typeof failedAt !== 'string') refuseCursor();
      startKey = { kind: DLQ_KIND, id, failed_at: failedAt };
    }
    const page = await this.deadLetters.list(limit, reason, startKey);
    const next = page.next;
    return {
      items: page.items.map(toDlqEntryDto),
      next_cursor: next
        ? this.cursors.sign(scope, { id: String(next.id), failed_at: String(next.failed_at) })
        : null,
    };
  }

  async get(id: string): Promise<DlqEntryDto> {
    return toDlqEntryDto(await this.find(id));
  }

  private async find(id: string): Promise<DeadLetterEntry> {
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
    const entry = await this.find(id);
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
    const attempts = await this.deadLetters.prepareRedrive(id, record.data);
    if (attempts === undefined)
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
    // A record that failed again before this line stays `pending` with its new attempt.
    await this.deadLetters.markRedriven(id, attempts);
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
