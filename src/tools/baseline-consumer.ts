import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoDbClient, createKinesisClient } from '../infra/aws/aws-clients';

/**
 * The plan's consumer loop, reproduced for the benchmark: LATEST iterators kept in memory,
 * GetRecords Limit=100 per shard, one PutItem per record in sequence, sleep(1) per round.
 * Prints `consumed N` once a second.
 */
async function main(): Promise<void> {
  const endpoints = {
    region: process.env.AWS_REGION ?? 'us-east-1',
    kinesis: process.env.AWS_ENDPOINT_URL_KINESIS,
    dynamoDb: process.env.AWS_ENDPOINT_URL_DYNAMODB,
  };
  const stream = process.env.KINESIS_STREAM_NAME!;
  const table = process.env.BASELINE_TABLE!;
  const kinesis = createKinesisClient(endpoints);
  const dynamoDb = createDynamoDbClient(endpoints);
  const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: stream }));
  const iterators = new Map<string, string | undefined>();
  let consumed = 0;
  setInterval(() => process.stdout.write(`consumed ${consumed}\n`), 1000).unref();
  process.stdout.write('ready\n');
  for (;;) {
    for (const shard of Shards) {
      let iterator = iterators.get(shard.ShardId!);
      if (!iterator) {
        ({ ShardIterator: iterator } = await kinesis.send(
          new GetShardIteratorCommand({
            StreamName: stream,
            ShardId: shard.ShardId,
            ShardIteratorType: 'LATEST',
          }),
        ));
      }
      const page = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }),
      );
      for (const record of page.Records ?? []) {
        const m = JSON.parse(Buffer.from(record.Data!).toString()) as Record<
          string,
          string | number
        >;
        await dynamoDb.send(
          new PutItemCommand({
            TableName: table,
            Item: {
              city_id: { S: String(m.city_id) },
              sk: { S: `${m.timestamp}#${m.message_id}` },
              pm25_value: { N: String(m.pm25_value) },
              stored_at: { N: String(Date.now()) },
            },
          }),
        );
        consumed += 1;
      }
      iterators.set(shard.ShardId!, page.NextShardIterator);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

main().catch((error: Error) => {
  process.stderr.write(`baseline consumer failed: ${error.message}\n`);
  process.exit(1);
});
