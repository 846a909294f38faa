import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  Shard,
} from '@aws-sdk/client-kinesis';
import { Checkpoint } from './lease.repository';
import { StreamRecord } from './record-decoder';
import { ShardReader } from './shard-poller';

export const MAX_RECORDS_PER_READ = 10_000;

/** ShardReader on the Kinesis API; streams are addressed by name (kinesalite knows no ARNs). */
export class KinesisShardReader implements ShardReader {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
  ) {}

  async listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.kinesis.send(
        new ListShardsCommand(
          nextToken ? { NextToken: nextToken } : { StreamName: this.streamName },
        ),
      );
      shards.push(...(page.Shards ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
    return shards;
  }

  async iterator(shardId: string, position: Checkpoint | undefined): Promise<string> {
    const output = await this.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.streamName,
        ShardId: shardId,
        ...(position
          ? {
              // Inside a KPL aggregate: read it again, its processed user records are skipped.
              ShardIteratorType:
                position.subSequenceNumber === undefined
                  ? 'AFTER_SEQUENCE_NUMBER'
                  : 'AT_SEQUENCE_NUMBER',
              StartingSequenceNumber: position.sequenceNumber,
            }
          : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    );
    if (!output.ShardIterator) throw new Error(`no iterator for ${shardId}`);
    return output.ShardIterator;
  }

  async read(iterator: string) {
    const output = await this.kinesis.send(
      new GetRecordsCommand({ ShardIterator: iterator, Limit: MAX_RECORDS_PER_READ }),
    );
    const records: StreamRecord[] = (output.Records ?? []).map((r) => ({
      data: r.Data ?? new Uint8Array(),
      sequenceNumber: r.SequenceNumber!,
      partitionKey: r.PartitionKey ?? '',
      arrivedAt: r.ApproximateArrivalTimestamp,
    }));
    return {
      records,
      next: output.NextShardIterator,
      millisBehindLatest: output.MillisBehindLatest,
    };
  }
}
