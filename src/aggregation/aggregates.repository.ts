import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';
import { putAll, runLimited } from '../infra/aws/batch-write';
import { Aggregate } from './window-aggregator';

export type StoredAggregate = Omit<Aggregate, 'city_name'> & { updated_at: string };

/**
 * Window aggregates keyed by (city_id, window # window_start), written whole: a replay writes the
 * same values again. A partial never overwrites a final one, nor a smaller final a larger one.
 */
@Injectable()
export class AggregatesRepository {
  private readonly table: string;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.aggregates;
  }

  /**
   * Finals are conditional puts. Partials are too, unless `partialsUnconditional` (no final can
   * exist for them yet): then they go 25 a call through BatchWriteItem.
   */
  async write(aggregates: Aggregate[], partialsUnconditional = false): Promise<void> {
    const updatedAt = new Date().toISOString();
    const item = (aggregate: Aggregate) => {
      const { city_name: _name, ...fields } = aggregate;
      return {
        ...fields,
        window_key: `${aggregate.window}#${aggregate.window_start}`,
        updated_at: updatedAt,
      };
    };
    const conditional = partialsUnconditional ? aggregates.filter((a) => a.final) : aggregates;
    if (partialsUnconditional) {
      await putAll(this.db, this.table, aggregates.filter((a) => !a.final).map(item), 4);
    }
    await runLimited(conditional, 16, async (aggregate) => {
      try {
        await this.db.send(
          new PutCommand({
            TableName: this.table,
            Item: item(aggregate),
            // A partial never replaces a final; a final replaces a final only with as many records
            // (a replay writes the same one; a window reopened after a merge cannot shrink it).
            ConditionExpression: aggregate.final
              ? 'attribute_not_exists(city_id) OR #final = :false OR record_count <= :count'
              : 'attribute_not_exists(city_id) OR #final = :false',
            ExpressionAttributeNames: { '#final': 'final' },
            ExpressionAttributeValues: aggregate.final
              ? { ':false': false, ':count': aggregate.record_count }
              : { ':false': false },
          }),
        );
      } catch (error) {
        // The window is already final: a replayed partial has nothing to add.
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    });
  }

  /** Ascending window_start, from inclusive, to exclusive. */
  async query(
    cityId: string,
    window: string,
    from: string,
    to: string,
    limit: number,
  ): Promise<StoredAggregate[]> {
    const items: StoredAggregate[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'city_id = :city AND window_key BETWEEN :from AND :to',
          FilterExpression: 'window_start < :end',
          ExpressionAttributeValues: {
            ':city': cityId,
            ':from': `${window}#${from}`,
            ':to': `${window}#${to}`,
            ':end': to,
          },
          Limit: limit,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const { window_key: _key, ...aggregate } = item;
        items.push(aggregate as StoredAggregate);
      }
      startKey = page.LastEvaluatedKey;
    } while (items.length < limit && startKey);
    return items.slice(0, limit);
  }
}
