import { aqiCategory, computeAqi } from '../domain/aqi';
import { Measurement } from '../domain/measurement';
import { WindowSize, windowStart } from './windows';

export interface AggregationSettings {
  sizes: WindowSize[];
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  idleMs: number;
}

/** Exact sums: values are kept to six decimals, so micro-units add up as integers in any order. */
const MICRO = 1_000_000;
const micro = (value: number) => Math.round(value * MICRO);

/** [sum (micro-units), min, max] of one field. */
type Stats = [number, number, number];

interface Accumulator {
  label: string;
  cityId: string;
  cityName: string;
  start: number;
  size: number;
  count: number;
  pm25: Stats;
  pm10: Stats;
  temperature: Stats;
  aqi: Stats;
  ids: Set<string>;
  dirty: boolean;
}

export interface Aggregate {
  city_id: string;
  city_name: string;
  window: string;
  window_start: string;
  window_end: string;
  record_count: number;
  avg_pm25: number;
  min_pm25: number;
  max_pm25: number;
  avg_pm10: number;
  min_pm10: number;
  max_pm10: number;
  avg_aqi: number;
  max_aqi: number;
  avg_temperature_c: number;
  min_temperature_c: number;
  max_temperature_c: number;
  aqi: number;
  aqi_category: string;
  final: boolean;
}

/** What `add` did with a record, per window size. */
export interface AddResult {
  late: string[];
}

const windowKey = (label: string, cityId: string, start: number) => `${label}|${cityId}|${start}`;
const newStats = (): Stats => [0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const addStat = (s: Stats, value: number) => {
  s[0] += micro(value);
  s[1] = Math.min(s[1], value);
  s[2] = Math.max(s[2], value);
};
const round = (value: number, decimals: number) =>
  Math.round(value * 10 ** decimals) / 10 ** decimals;
const avg = (s: Stats, count: number) => round(s[0] / count / MICRO, 6);

/**
 * Event-time tumbling windows for the records of one shard: accumulators per (size, city, window
 * start) that count each message id once, a watermark (max event time − out-of-orderness, moved on
 * by wall-clock time while the shard is idle), allowed lateness, and a compact snapshot.
 * Pure: no I/O, and time comes in as arguments.
 */
export class WindowAggregator {
  private readonly windows = new Map<string, Accumulator>();
  private maxEventTime = Number.NEGATIVE_INFINITY;
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private lastRecordAt?: number;
  private inheritedUntil?: number;

  constructor(private readonly settings: AggregationSettings) {}

  get watermark(): number {
    return this.watermarkMs;
  }

  get openWindows(): number {
    return this.windows.size;
  }

  /**
   * True once no window open now can have been written final by an earlier run (a previous owner,
   * a crash before the first checkpoint, a parent shard): once the watermark has passed every
   * window that was open when this aggregator started. Until then partial writes stay conditional.
   */
  get partialsCannotMeetFinals(): boolean {
    return this.inheritedUntil !== undefined && this.watermarkMs >= this.inheritedUntil;
  }

  /** Adds a record that arrived at wall-clock `now`; returns the sizes for which it came too late. */
  add(m: Measurement, now: number): AddResult {
    const eventTime = Date.parse(m.timestamp);
    if (this.inheritedUntil === undefined) this.inheritInto(eventTime);
    const late: string[] = [];
    for (const size of this.settings.sizes) {
      const start = windowStart(eventTime, size.ms);
      if (start + size.ms + this.settings.allowedLatenessMs <= this.watermarkMs) {
        late.push(size.label);
        continue;
      }
      const key = windowKey(size.label, m.city_id, start);
      let acc = this.windows.get(key);
      if (!acc) {
        acc = {
          label: size.label,
          cityId: m.city_id,
          cityName: m.city_name,
          start,
          size: size.ms,
          count: 0,
          pm25: newStats(),
          pm10: newStats(),
          temperature: newStats(),
          aqi: newStats(),
          ids: new Set(),
          dirty: false,
        };
        this.windows.set(key, acc);
      }
      if (acc.ids.has(m.message_id)) continue;
      acc.ids.add(m.message_id);
      acc.count += 1;
      addStat(acc.pm25, m.pm25_value);
      addStat(acc.pm10, m.pm10_value);
      addStat(acc.temperature, m.temperature_c);
      addStat(acc.aqi, m.aqi_value);
      acc.cityName = m.city_name;
      acc.dirty = true;
    }
    // A record up to 5 minutes ahead is valid, but must not pull every city's windows shut:
    // for the watermark an event time counts at most as its ingestion time.
    const ingestedAt = Date.parse(m.ingestion_timestamp);
    this.maxEventTime = Math.max(
      this.maxEventTime,
      Number.isNaN(ingestedAt) ? eventTime : Math.min(eventTime, ingestedAt),
    );
    this.lastRecordAt = now;
    this.advance(this.maxEventTime - this.settings.outOfOrdernessMs);
    return { late };
  }

  /**
   * Moves the watermark on while the shard is caught up and idle, then returns the windows to
   * write: every window now final, and with `flushPartials` the changed open ones. A final window
   * stays in the state until `confirm` says it was written, so a failed write loses nothing.
   */
  collect(now: number, caughtUp: boolean, flushPartials: boolean): Aggregate[] {
    if (
      caughtUp &&
      this.lastRecordAt !== undefined &&
      this.maxEventTime > Number.NEGATIVE_INFINITY
    ) {
      const idleFor = now - this.lastRecordAt;
      if (idleFor >= this.settings.idleMs) {
        this.advance(this.maxEventTime - this.settings.outOfOrdernessMs + idleFor);
      }
    }
    const out: Aggregate[] = [];
    for (const acc of this.windows.values()) {
      const final = acc.start + acc.size + this.settings.allowedLatenessMs <= this.watermarkMs;
      if (final) {
        out.push(this.toAggregate(acc, true));
      } else if (flushPartials && acc.dirty) {
        acc.dirty = false;
        out.push(this.toAggregate(acc, false));
      }
    }
    return out;
  }

  /** Forgets the final windows among `written`: they are stored. */
  confirm(written: Aggregate[]): void {
    for (const a of written) {
      if (a.final) this.windows.delete(windowKey(a.window, a.city_id, Date.parse(a.window_start)));
    }
  }

  /**
   * The state as a compact JSON-able value; `restore` takes it back. Without ids, a restored
   * window can no longer tell a duplicate that arrives later (only for oversized state).
   */
  snapshot(options: { withoutIds?: boolean } = {}): unknown {
    return {
      v: 1,
      maxEventTime: Number.isFinite(this.maxEventTime) ? this.maxEventTime : null,
      watermark: Number.isFinite(this.watermarkMs) ? this.watermarkMs : null,
      windows: [...this.windows.values()].map((a) => [
        a.label,
        a.cityId,
        a.cityName,
        a.start,
        a.size,
        a.count,
        a.pm25,
        a.pm10,
        a.temperature,
        a.aqi,
        options.withoutIds ? '' : [...a.ids].join(''),
      ]),
    };
  }

  /** Takes back a snapshot; `now` starts the idle clock, as if the last record arrived then. */
  restore(snapshot: unknown, now?: number): void {
    const s = snapshot as {
      v: number;
      maxEventTime: number | null;
      watermark: number | null;
      windows: [
        string,
        string,
        string,
        number,
        number,
        number,
        Stats,
        Stats,
        Stats,
        Stats,
        string,
      ][];
    };
    if (s?.v !== 1) throw new Error('unknown window-state version');
    this.lastRecordAt = now;
    this.maxEventTime = s.maxEventTime ?? Number.NEGATIVE_INFINITY;
    this.watermarkMs = s.watermark ?? Number.NEGATIVE_INFINITY;
    this.inheritInto();
    this.windows.clear();
    const fix = (st: Stats): Stats => [
      st[0],
      st[1] ?? Number.POSITIVE_INFINITY,
      st[2] ?? Number.NEGATIVE_INFINITY,
    ];
    for (const [
      label,
      cityId,
      cityName,
      start,
      size,
      count,
      pm25,
      pm10,
      temperature,
      aqi,
      ids,
    ] of s.windows) {
      this.windows.set(windowKey(label, cityId, start), {
        label,
        cityId,
        cityName,
        start,
        size,
        count,
        pm25: fix(pm25),
        pm10: fix(pm10),
        temperature: fix(temperature),
        aqi: fix(aqi),
        ids: new Set(ids.match(/.{16}/g) ?? []),
        dirty: false,
      });
    }
  }

  /**
   * Takes over the open windows of parent shards (a split or merge) for the cities `keep` admits.
   * The watermark starts at the slowest parent's, so nothing a parent still had open turns late.
   */
  adopt(parents: unknown[], keep: (cityId: string) => boolean, now?: number): void {
    this.lastRecordAt = now;
    const others = parents.map((p) => {
      const w = new WindowAggregator(this.settings);
      w.restore(p);
      return w;
    });
    const least = (values: number[]) =>
      values.length > 0 ? Math.min(...values) : Number.NEGATIVE_INFINITY;
    this.maxEventTime = least(others.map((o) => o.maxEventTime).filter(Number.isFinite));
    this.watermarkMs = least(others.map((o) => o.watermarkMs).filter(Number.isFinite));
    this.inheritInto();
    for (const other of others) {
      for (const [key, acc] of other.windows) {
        if (keep(acc.cityId)) this.windows.set(key, { ...acc, dirty: true });
      }
    }
  }

  private inheritInto(firstEventTime?: number): void {
    const base = Number.isFinite(this.watermarkMs) ? this.watermarkMs : firstEventTime;
    if (base === undefined) return;
    const largest = Math.max(...this.settings.sizes.map((size) => size.ms));
    this.inheritedUntil = base + largest + this.settings.allowedLatenessMs;
  }

  private advance(to: number): void {
    if (to > this.watermarkMs) this.watermarkMs = to;
  }

  private toAggregate(a: Accumulator, final: boolean): Aggregate {
    const avgPm25 = avg(a.pm25, a.count);
    const avgPm10 = avg(a.pm10, a.count);
    // The indicator of the window's average concentrations, never an average of AQIs.
    const aqi = computeAqi(avgPm25, avgPm10);
    return {
      city_id: a.cityId,
      city_name: a.cityName,
      window: a.label,
      window_start: new Date(a.start).toISOString(),
      window_end: new Date(a.start + a.size).toISOString(),
      record_count: a.count,
      avg_pm25: avgPm25,
      min_pm25: a.pm25[1],
      max_pm25: a.pm25[2],
      avg_pm10: avgPm10,
      min_pm10: a.pm10[1],
      max_pm10: a.pm10[2],
      avg_aqi: avg(a.aqi, a.count),
      max_aqi: a.aqi[2],
      avg_temperature_c: avg(a.temperature, a.count),
      min_temperature_c: a.temperature[1],
      max_temperature_c: a.temperature[2],
      aqi,
      aqi_category: aqiCategory(aqi),
      final,
    };
  }
}
