import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { AppConfig } from '../../src/config/app.config';
import { eventually } from './test-app';

interface StreamRecordSeen {
  shardId: string;
  sequenceNumber: string;
  data: string;
}

/** Every record on the stream, read from TRIM_HORIZON on every shard. */
export async function readStreamRecords(
  kinesis: KinesisClient,
  streamName: string,
): Promise<StreamRecordSeen[]> {
  const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: streamName }));
  const seen: StreamRecordSeen[] = [];
  for (const shard of Shards) {
    let { ShardIterator: iterator } = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: streamName,
        ShardId: shard.ShardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    while (iterator) {
      const page = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: 10000 }),
      );
      for (const record of page.Records ?? []) {
        seen.push({
          shardId: shard.ShardId!,
          sequenceNumber: record.SequenceNumber!,
          data: Buffer.from(record.Data!).toString(),
        });
      }
      if ((page.Records ?? []).length === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return seen;
}

export async function readWholeStream(
  kinesis: KinesisClient,
  streamName: string,
): Promise<string[]> {
  return (await readStreamRecords(kinesis, streamName)).map((r) => r.data);
}

/**
 * Each lease's position: its checkpoint, or `sequence/sub-sequence` while the checkpoint is
 * inside a KPL aggregate (that record is not done yet).
 */
export async function checkpoints(
  db: DynamoDBDocumentClient,
  config: AppConfig,
): Promise<Record<string, string | undefined>> {
  const { Items = [] } = await db.send(
    new ScanCommand({ TableName: config.tables.leases, ConsistentRead: true }),
  );
  return Object.fromEntries(
    Items.map((item) => [
      item.leaseKey as string,
      item.checkpointSubSequenceNumber === undefined
        ? (item.checkpoint as string | undefined)
        : `${String(item.checkpoint)}/${String(item.checkpointSubSequenceNumber)}`,
    ]),
  );
}

/** Waits until every shard's checkpoint is its last record: everything on the stream was processed. */
export async function waitUntilConsumed(t: {
  kinesis: KinesisClient;
  db: DynamoDBDocumentClient;
  config: AppConfig;
}): Promise<void> {
  const records = await readStreamRecords(t.kinesis, t.config.stream.name);
  const last = new Map<string, string>();
  for (const r of records) last.set(r.shardId, r.sequenceNumber);
  await eventually(async () => {
    const current = await checkpoints(t.db, t.config);
    return [...last].every(
      ([shard, seq]) => current[shard] === seq || current[shard] === 'SHARD_END',
    )
      ? true
      : undefined;
  }, 'checkpoints at the end of every shard');
}
