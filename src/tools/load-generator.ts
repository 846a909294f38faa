import { MeasurementInput } from '../domain/measurement';
import {
  MeasurementGenerator,
  seededRandom,
  simulatedCities,
} from '../ingestion/simulator/measurement-generator';
import { EventTimes } from './event-times';
import { percentile } from './percentile';

export interface LoadOptions {
  target: string;
  rate: number;
  cities: number;
  durationS: number;
  batch: number;
  seed: number;
  apiKey?: string;
  /** Fractions 0–1 of measurements sent again, shifted back within the out-of-orderness, or 10 min late. */
  duplicates: number;
  outOfOrder: number;
  late: number;
  maxInFlight?: number;
  /** Called with each acknowledged batch: its message ids and the ack time (epoch ms). */
  onAck?: (bodies: MeasurementInput[], messageIds: string[], ackedAt: number) => void;
  onProgress?: (line: string) => void;
}

export interface LoadReport {
  offeredRate: number;
  achievedRate: number;
  sent: number;
  acknowledged: number;
  errors: number;
  retriedAfter503: number;
  ackP50Ms: number;
  ackP99Ms: number;
  durationS: number;
}

/**
 * Open-loop load through POST /measurements: measurements are generated on a schedule at `rate`,
 * whatever the answers, batched `batch` per request with at most `maxInFlight` requests open.
 * A 503 is retried after its Retry-After with the same body (safe: message ids). No two
 * measurements of a city share an event time (see EventTimes), so only `duplicates` are duplicates.
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const generator = new MeasurementGenerator(simulatedCities(options.cities), options.seed);
  const random = seededRandom(options.seed ^ 0x5bd1e995);
  const times = new EventTimes();
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey) headers['x-api-key'] = options.apiKey;
  const maxInFlight = options.maxInFlight ?? 64;
  const acks: number[] = [];
  let sent = 0;
  let acknowledged = 0;
  let errors = 0;
  let retried = 0;
  let inFlight = 0;
  const pending: MeasurementInput[][] = [];
  const requests = new Set<Promise<void>>();
  const started = Date.now();
  const endAt = started + options.durationS * 1000;
  let generated = 0;
  let lastSecond = started;
  let ackedAtLastSecond = 0;

  const post = async (bodies: MeasurementInput[]): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${options.target}/measurements`, {
          method: 'POST',
          headers,
          body: JSON.stringify(bodies),
        });
        const text = await res.text();
        if (res.status === 202) {
          acks.push(performance.now() - t0);
          acknowledged += bodies.length;
          options.onAck?.(
            bodies,
            (JSON.parse(text) as { message_ids: string[] }).message_ids,
            Date.now(),
          );
          return;
        }
        if (
          (res.status === 503 || res.status === 429) &&
          attempt < 5 &&
          Date.now() < endAt + 30_000
        ) {
          retried += 1;
          const wait = Number(res.headers.get('retry-after') ?? '1');
          await new Promise((r) => setTimeout(r, Math.min(10, Math.max(0.05, wait)) * 1000));
          continue;
        }
        errors += bodies.length;
        return;
      } catch {
        errors += bodies.length;
        return;
      }
    }
  };

  const pump = () => {
    while (pending.length > 0 && inFlight < maxInFlight) {
      const bodies = pending.shift()!;
      inFlight += 1;
      sent += bodies.length;
      const request = post(bodies).finally(() => {
        inFlight -= 1;
        requests.delete(request);
        pump();
      });
      requests.add(request);
    }
  };

  let batch: MeasurementInput[] = [];
  const resend: MeasurementInput[] = [];
  while (Date.now() < endAt) {
    const now = Date.now();
    const due = Math.floor(((now - started) / 1000) * options.rate) - generated;
    for (let i = 0; i < due; i++) {
      generated += 1;
      const dice = random();
      const back =
        dice < options.late
          ? 10 * 60_000
          : dice < options.late + options.outOfOrder
            ? Math.floor(random() * 4000)
            : 0;
      const m = generator.next(new Date(now - back));
      const at = back > 0 ? times.past(m.city_id, now - back, now) : times.next(m.city_id, now);
      m.timestamp = new Date(at).toISOString();
      batch.push(m);
      if (random() < options.duplicates) resend.push(m);
      if (batch.length >= options.batch) {
        pending.push(batch);
        batch = [];
      }
    }
    while (resend.length >= options.batch) pending.push(resend.splice(0, options.batch));
    pump();
    if (now - lastSecond >= 1000 && options.onProgress) {
      const rate = ((acknowledged - ackedAtLastSecond) * 1000) / (now - lastSecond);
      options.onProgress(
        `offered ${options.rate}/s  acked ${rate.toFixed(0)}/s  total ${acknowledged}  errors ${errors}  in flight ${inFlight}  ack p50 ${percentile(acks.slice(-500), 50)?.toFixed(0)} ms p99 ${percentile(acks.slice(-500), 99)?.toFixed(0)} ms`,
      );
      lastSecond = now;
      ackedAtLastSecond = acknowledged;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  if (batch.length > 0) pending.push(batch);
  if (resend.length > 0) pending.push(resend.splice(0));
  pump();
  while (requests.size > 0 || pending.length > 0) {
    await Promise.allSettled([...requests]);
    pump();
  }
  const durationS = (Date.now() - started) / 1000;
  return {
    offeredRate: options.rate,
    achievedRate: acknowledged / options.durationS,
    sent,
    acknowledged,
    errors,
    retriedAfter503: retried,
    ackP50Ms: percentile(acks, 50),
    ackP99Ms: percentile(acks, 99),
    durationS,
  };
}
