import { KinesisClient, PutRecordsInput, PutRecordsOutput } from '@aws-sdk/client-kinesis';
import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { DirectCall, kinesisDirectCall } from '../infra/aws/direct-call';
import { MetricsService } from '../metrics/metrics.service';
import { BatchingProducer } from './batching-producer';

/** The service's one producer: every POST and the simulator share its batches. */
@Injectable()
export class KinesisProducerService implements OnModuleDestroy {
  private readonly logger = new Logger(KinesisProducerService.name);
  private readonly producer: BatchingProducer;
  private readonly appended = new Subject<string>();
  /**
   * The id of each shard this process just put records on (once per PutRecords call), so a
   * reader of that shard in this process, idle and reading less often, can read at once.
   */
  readonly appended$: Observable<string> = this.appended.asObservable();

  constructor(
    @Inject(KINESIS_CLIENT) kinesis: KinesisClient,
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    const streamName = config.stream.name;
    // Without the SDK's command stack (see direct-call.ts): a call per batch of POSTs.
    const putRecords: DirectCall<PutRecordsInput, PutRecordsOutput> = kinesisDirectCall(
      'PutRecords',
      kinesis,
    );
    this.producer = new BatchingProducer(
      async (entries) => {
        const output = await putRecords.send({ StreamName: streamName, Records: entries });
        const results = output.Records ?? [];
        for (const shardId of new Set(results.map((r) => r.ShardId)))
          if (shardId) this.appended.next(shardId);
        return results;
      },
      {
        ...config.producer,
        onRetry: (count, reason) => {
          metrics.producerRetries.inc({ reason }, count);
          this.logger.warn(`retrying ${count} record(s) after ${reason}`);
        },
      },
    );
  }

  async send(records: { data: Uint8Array; partitionKey: string }[]): Promise<void> {
    const started = performance.now();
    await this.producer.send(records);
    this.metrics.ingestAck.observe((performance.now() - started) / 1000);
    this.metrics.recordsIngested.inc(records.length);
  }

  async onModuleDestroy(): Promise<void> {
    const pending = this.producer.bufferedRecords;
    await this.producer.close();
    if (pending > 0) this.logger.log(`flushed ${pending} buffered record(s) before shutdown`);
  }
}
