import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** 1 ms to 60 s. */
export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/**
 * The service's Prometheus metrics on a registry of its own (several apps in one process, as in
 * tests, do not collide). Gauges of other components are filled at scrape time by collectors.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly collectors: (() => void)[] = [];

  readonly recordsIngested = new Counter({
    name: 'aq_records_ingested_total',
    help: 'Measurements acknowledged by Kinesis (POST /measurements and the simulator)',
    registers: [this.registry],
  });
  readonly ingestAck = new Histogram({
    name: 'aq_ingest_ack_seconds',
    help: 'Time from handing records to the producer to Kinesis acknowledging all of them',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly producerRetries = new Counter({
    name: 'aq_producer_retries_total',
    help: 'Records of a PutRecords call retried, by error',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly recordsConsumed = new Counter({
    name: 'aq_records_consumed_total',
    help: 'Stream records processed, by outcome (stored or dead_lettered)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly kplUserRecords = new Counter({
    name: 'aq_kpl_user_records_total',
    help: 'User records taken out of KPL aggregated records (each then counted as a consumed record)',
    registers: [this.registry],
  });
  readonly dlqEntries = new Counter({
    name: 'aq_dlq_entries_total',
    help: 'Dead-letter entries written, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly endToEnd = new Histogram({
    name: 'aq_end_to_end_latency_seconds',
    help: 'ingestion_timestamp → speed-layer write acknowledged',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly commitStep = new Histogram({
    name: 'aq_commit_step_seconds',
    help: 'One try of a shard commit step: latest (the per-city latest items) or transaction (window results, checkpoint, window state)',
    labelNames: ['step'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly lateRecords = new Counter({
    name: 'aq_late_records_total',
    help: 'Records that arrived after their window was final (stored raw, not aggregated)',
    registers: [this.registry],
  });
  readonly windowFinalisationDelay = new Histogram({
    name: 'aq_window_finalisation_delay_seconds',
    help: 'Time from a window end to its aggregate being written as final',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly oversizedState = new Counter({
    name: 'aq_window_state_oversize_total',
    help: 'Checkpoints whose window state exceeded a transaction and was saved without message ids',
    registers: [this.registry],
  });
  readonly consumerRetries = new Counter({
    name: 'aq_consumer_retries_total',
    help: 'Failed calls of the shard pollers that were retried after a back-off, by operation',
    labelNames: ['operation'],
    registers: [this.registry],
  });
  readonly shardStalled = new Gauge({
    name: 'aq_shard_stalled_seconds',
    help: 'Per shard held by this instance: how long it has been waiting for a failing dependency (0: not stalled)',
    labelNames: ['shard'],
    registers: [this.registry],
  });
  readonly aggregatesRefused = new Counter({
    name: 'aq_aggregate_writes_refused_total',
    help: 'Window results the aggregates table refused, by what it held (a final, or a larger partial)',
    labelNames: ['stored'],
    registers: [this.registry],
  });
  readonly windowsClosedEarly = new Counter({
    name: 'aq_windows_finalised_early_total',
    help: 'Windows finalised before their time because a shard reached AGGREGATION_MAX_OPEN_WINDOWS or the state size limit',
    registers: [this.registry],
  });
  readonly leaseRenewalFailures = new Counter({
    name: 'aq_lease_renewal_failures_total',
    help: 'Lease renewals that failed or timed out (a lease taken by another instance is not counted)',
    registers: [this.registry],
  });
  readonly shardsQuarantined = new Gauge({
    name: 'aq_shards_quarantined',
    help: 'Shards this instance released and will not take for a while: their window state could not be restored',
    registers: [this.registry],
  });
  readonly iteratorAge = new Gauge({
    name: 'aq_shard_iterator_age_seconds',
    help: 'Per shard held by this instance: how far behind the tip of the stream the last read was',
    labelNames: ['shard'],
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'aq_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'aq_http_request_duration_seconds',
    help: 'Time from a request arriving to its response being sent, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly leasesHeld = new Gauge({
    name: 'aq_leases_held',
    help: 'Shard leases held by this instance',
    registers: [this.registry],
  });

  constructor() {
    // The event-loop delay is sampled by a timer every 100 ms, not every 10 ms (prom-client's
    // default): at 100 wake-ups a second that timer alone cost an idle instance 0.5% of a core.
    // A block of the loop longer than 100 ms is still seen whole.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  /** Registers a function that sets gauges just before each scrape. */
  addCollector(collector: () => void): void {
    this.collectors.push(collector);
  }

  /** The Prometheus text, with every collector run first (so no gauge shows the scrape before). */
  scrape(): Promise<string> {
    for (const collector of this.collectors) collector();
    return this.registry.metrics();
  }
}
