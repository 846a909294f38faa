import { DynamoDBDocumentClient, TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';
import { queryPage } from '../infra/aws/dynamodb-calls';
import { Aggregate } from './window-aggregator';

export type StoredAggregate = Omit<Aggregate, 'city_name'> & { updated_at: string };
type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/**
 * Window aggregates keyed by (city_id, window # window_start). Every write is conditional on the
 * item: a final is never replaced (not by a partial, not by another final), and a partial never
 * replaces a larger partial. The caller fences the writer (the lease) in the same transaction.
 */
@Injectable()
export class AggregatesRepository {
  readonly table: string;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.aggregates;
  }

  /** The conditional Put of one window result, as a TransactWriteItems item. */
  putItem(aggregate: Aggregate, updatedAt: string): TransactItem {
    const { city_name: _name, ...fields } = aggregate;
    return {
      Put: {
        TableName: this.table,
        Item: {
          ...fields,
          window_key: `${aggregate.window}#${aggregate.window_start}`,
          updated_at: updatedAt,
        },
        ConditionExpression: aggregate.final
          ? 'attribute_not_exists(city_id) OR #final = :false'
          : 'attribute_not_exists(city_id) OR (#final = :false AND record_count <= :count)',
        ExpressionAttributeNames: { '#final': 'final' },
        ExpressionAttributeValues: aggregate.final
          ? { ':false': false }
          : { ':false': false, ':count': aggregate.record_count },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    };
  }

  /**
   * One page of windows with from <= window_start < to, older than `startKey` when given: the
   * newest `limit` of them, returned in ascending window_start. `next` is the key of the oldest
   * window returned, and only when an older one exists in the range (one extra is read to tell).
   */
  async query(
    cityId: string,
    window: string,
    from: string,
    to: string,
    limit: number,
    startKey?: Record<string, unknown>,
  ): Promise<{ items: StoredAggregate[]; next: { city_id: string; window_key: string } | null }> {
    const { items: returned, more } = await queryPage(
      this.db,
      {
        TableName: this.table,
        KeyConditionExpression: 'city_id = :city AND window_key BETWEEN :from AND :to',
        FilterExpression: 'window_start < :end',
        ExpressionAttributeValues: {
          ':city': cityId,
          ':from': `${window}#${from}`,
          ':to': `${window}#${to}`,
          ':end': to,
        },
        ScanIndexForward: false,
      },
      limit,
      startKey,
    );
    const oldest = returned.at(-1);
    const next = more && oldest ? { city_id: cityId, window_key: String(oldest.window_key) } : null;
    const items = returned.reverse().map((item) => {
      const { window_key: _key, ...aggregate } = item;
      return aggregate as StoredAggregate;
    });
    return { items, next };
  }
}
