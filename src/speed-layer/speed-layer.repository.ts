import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { Measurement } from '../domain/measurement';
import { putAll, queryPage, runLimited } from '../infra/aws/dynamodb-calls';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';

/** The partition of the realtime table that holds one "latest" item per city (not a valid city id). */
export const CITIES_PARTITION = '#cities';
const PARALLEL_BATCHES = 16;

export interface CityLatest {
  city_id: string;
  city_name: string;
  latest: Measurement;
}

/** The key a page goes on from: the partition and the sort key of its last item. */
export type PageKey = { city_id: string; sk: string };

/** A measurement's place in its city's history: event time, then message id. */
export const eventKey = (m: Measurement) => `${m.timestamp}#${m.message_id}`;

function stripItem(item: Record<string, unknown>): Measurement {
  const { sk: _sk, ttl: _ttl, stored_at: _storedAt, ...measurement } = item;
  return measurement as unknown as Measurement;
}

/**
 * The speed layer: one item per measurement keyed by (city_id, event time # message id), so a
 * duplicate overwrites itself, and a per-city latest item where the newest event time wins.
 */
@Injectable()
export class SpeedLayerRepository {
  private readonly table: string;
  private readonly ttlSeconds: number;
  private readonly pendingLatest = new Map<string, { m: Measurement; ttl: number }>();
  private flushing: Promise<unknown> = Promise.resolve();
  private readonly noted = new Subject<Measurement>();
  /**
   * Each measurement noted as its city's latest, once its realtime item is stored (before the
   * city item is flushed); in-process only, so it holds the shards this instance reads. The same
   * city may be noted again with an older measurement: subscribers keep the newest event time.
   */
  readonly latestNoted$: Observable<Measurement> = this.noted.asObservable();

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.realtime;
    this.ttlSeconds = config.speedLayer.ttlHours * 3600;
  }

  /**
   * Writes every measurement (idempotently); throws on failure. The per-city latest items are
   * only noted here and written by `flushLatest`, once per city per flush instead of per batch.
   */
  async write(measurements: Measurement[]): Promise<void> {
    if (measurements.length === 0) return;
    const storedAt = Date.now();
    const ttl = Math.floor(storedAt / 1000) + this.ttlSeconds;
    const unique = new Map<string, Measurement>();
    for (const m of measurements) unique.set(`${m.city_id}\u0000${eventKey(m)}`, m);
    // stored_at (internal): when the speed layer got it, for latency and ordering checks.
    const items = [...unique.values()].map((m) => ({
      ...m,
      sk: eventKey(m),
      ttl,
      stored_at: storedAt,
    }));
    await putAll(this.db, this.table, items, PARALLEL_BATCHES);
    for (const m of measurements) this.noteLatest(m, ttl);
  }

  /**
   * Writes the newest measurement noted per city since the last flush (newest event time wins,
   * whatever the order); what fails stays noted and the call throws. Callers flush before they
   * checkpoint, so a checkpointed record's city item is written.
   */
  flushLatest(): Promise<void> {
    // One flush at a time: a caller waits for the one in flight (which may hold its cities),
    // then flushes what is left, so no caller checkpoints before its cities are written.
    const run = this.flushing.then(
      () => this.flushPending(),
      () => this.flushPending(),
    );
    this.flushing = run.catch(() => undefined);
    return run;
  }

  private async flushPending(): Promise<void> {
    const due = [...this.pendingLatest.values()];
    this.pendingLatest.clear();
    const failed: { m: Measurement; ttl: number }[] = [];
    let firstError: unknown;
    await runLimited(due, PARALLEL_BATCHES, async (entry) => {
      try {
        await this.updateLatest(entry.m, entry.ttl);
      } catch (error) {
        failed.push(entry);
        firstError ??= error;
      }
    });
    for (const entry of failed) this.noteLatest(entry.m, entry.ttl);
    if (firstError) throw firstError;
  }

  private noteLatest(m: Measurement, ttl: number): void {
    const current = this.pendingLatest.get(m.city_id);
    if (!current || eventKey(m) > eventKey(current.m)) {
      this.pendingLatest.set(m.city_id, { m, ttl });
      this.noted.next(m);
    }
  }

  /**
   * One page, newest event time first, older than `startKey` when given; items whose TTL passed
   * are skipped even if DynamoDB still holds them. `next` is the key of the last item returned,
   * and only when an older live item exists (one extra is read to tell), so it never leads to an
   * empty page unless items expire in between.
   */
  async latest(
    cityId: string,
    limit: number,
    startKey?: Record<string, unknown>,
  ): Promise<{ items: Measurement[]; next: PageKey | null }> {
    const { items, next } = await this.livePage(cityId, false, limit, startKey);
    return { items: items.map(stripItem), next };
  }

  /**
   * One page of the per-city latest items, ascending city_id (byte order), after `startKey` when
   * given; `next` only when another city follows.
   */
  async cities(
    limit: number,
    startKey?: Record<string, unknown>,
  ): Promise<{ items: CityLatest[]; next: PageKey | null }> {
    const { items, next } = await this.livePage(CITIES_PARTITION, true, limit, startKey);
    return {
      items: items.map((item) => {
        const latest = item.latest as Measurement;
        return { city_id: latest.city_id, city_name: latest.city_name, latest };
      }),
      next,
    };
  }

  /** A page of one partition's items whose TTL has not passed, and the key to go on from. */
  private async livePage(
    partition: string,
    ascending: boolean,
    limit: number,
    startKey?: Record<string, unknown>,
  ): Promise<{ items: Record<string, unknown>[]; next: PageKey | null }> {
    const { items, more } = await queryPage(
      this.db,
      {
        TableName: this.table,
        KeyConditionExpression: 'city_id = :partition',
        FilterExpression: '#ttl > :now',
        ExpressionAttributeNames: { '#ttl': 'ttl' },
        ExpressionAttributeValues: {
          ':partition': partition,
          ':now': Math.floor(Date.now() / 1000),
        },
        ScanIndexForward: ascending,
      },
      limit,
      startKey,
    );
    const last = items.at(-1);
    return { items, next: more && last ? { city_id: partition, sk: String(last.sk) } : null };
  }

  private async updateLatest(m: Measurement, ttl: number): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { city_id: CITIES_PARTITION, sk: m.city_id },
          UpdateExpression: 'SET latest = :m, event_key = :k, #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(event_key) OR event_key <= :k',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':m': m, ':k': eventKey(m), ':ttl': ttl },
        }),
      );
    } catch (error) {
      // An item with a newer event time is already there: nothing to do.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
}
