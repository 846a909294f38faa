import {
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  Shard,
} from '@aws-sdk/client-kinesis';
import { DirectCall, kinesisDirectCall } from '../infra/aws/direct-call';
import { Checkpoint } from './lease.repository';
import { StreamRecord } from './record-decoder';
import { ShardReader } from './shard-poller';

export const MAX_RECORDS_PER_READ = 10_000;

/** GetRecords as Kinesis answers it in JSON: data in base64, arrival in epoch seconds. */
interface GetRecordsAnswer {
  Records?: {
    Data: string;
    SequenceNumber: string;
    PartitionKey?: string;
    ApproximateArrivalTimestamp?: number;
  }[];
  NextShardIterator?: string | null;
  MillisBehindLatest?: number;
}

/** ShardReader on the Kinesis API; streams are addressed by name (kinesalite knows no ARNs). */
export class KinesisShardReader implements ShardReader {
  // The hottest call of the service (every shard, several times a second): sent directly.
  private readonly getRecords: DirectCall<
    { ShardIterator: string; Limit: number },
    GetRecordsAnswer
  >;

  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
  ) {
    this.getRecords = kinesisDirectCall('GetRecords', kinesis);
  }

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

  async read(iterator: string, limit = MAX_RECORDS_PER_READ) {
    const output = await this.getRecords.send({ ShardIterator: iterator, Limit: limit });
    const records: StreamRecord[] = (output.Records ?? []).map((r) => ({
      data: Buffer.from(r.Data, 'base64'),
      sequenceNumber: r.SequenceNumber,
      partitionKey: r.PartitionKey ?? '',
      arrivedAt:
        r.ApproximateArrivalTimestamp === undefined
          ? undefined
          : new Date(Math.round(r.ApproximateArrivalTimestamp * 1000)),
    }));
    return {
      records,
      next: output.NextShardIterator ?? undefined,
      millisBehindLatest: output.MillisBehindLatest,
    };
  }
}
