import { aqiCategory, computeAqi } from '../domain/aqi';
import { Measurement } from '../domain/measurement';
import { HashRange, inRange, partitionHash } from './hash-range';
import { AggregationSettings, windowStart } from '../domain/windows';

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
  /** The ids added since the state was last saved (kept only once a full state is saved). */
  fresh: string[];
  /** Changed since its last write. */
  dirty: boolean;
  /** Closed before its time because the shard hit the cap on open windows. */
  early: boolean;
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
  /** Present (true) on a window finalised before its time at the cap on open windows. */
  finalised_early?: true;
}

/** What the table holds for a window whose write it refused. */
export interface Refusal {
  aggregate: Aggregate;
  existing: { final: boolean; record_count: number };
}

/** A parent shard's snapshot and hash range, for a child of a split or merge. */
export interface ParentState {
  snapshot: unknown;
  range?: HashRange;
}

/** What `add` did with a record, per window size. */
export interface AddResult {
  late: string[];
}

/** A watermark inherited from a parent shard for the cities of its hash range. */
interface Floor {
  range: HashRange;
  watermark: number;
}

type WindowRow = [
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
  number?,
];

/**
 * A full state, or (`d: 1`) what changed since the state saved before it: the windows that
 * changed, with only their new message ids, and the windows that are gone. The watermarks, floors
 * and tombstones are whole in both.
 */
interface SnapshotV2 {
  v: 1 | 2;
  d?: 1;
  maxEventTime: number | null;
  watermark: number | null;
  floors?: [string, string, number][];
  closed?: [string, string, number][];
  windows: WindowRow[];
  gone?: string[];
}

const DIRTY = 1;
const EARLY = 2;
/** What a saved row says of a window: enough to tell that it changed since. */
const savedAs = (count: number, flags: number) => count * 4 + flags;

export const windowKey = (label: string, cityId: string, start: number) =>
  `${label}|${cityId}|${start}`;
const aggregateKey = (a: Aggregate) => windowKey(a.window, a.city_id, Date.parse(a.window_start));
const newStats = (): Stats => [0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const addStat = (s: Stats, value: number) => {
  s[0] += micro(value);
  s[1] = Math.min(s[1], value);
  s[2] = Math.max(s[2], value);
};
/** The exact mean of micro-unit integers, at full double precision (15 significant digits). */
const avg = (s: Stats, count: number) => Number((s[0] / count / MICRO).toPrecision(15));
const finite = (value: number) => (Number.isFinite(value) ? value : null);

/**
 * Event-time tumbling windows for the records of one shard: accumulators per (size, city, window
 * start) that count each message id once, a watermark (max event time − out-of-orderness, moved on
 * by wall-clock time while the shard is idle), allowed lateness, and a compact snapshot. After a
 * split or merge each city keeps the watermark of the parent it came from (a floor), so a window
 * that was final there stays final here. Pure: no I/O, and time comes in as arguments.
 */
export class WindowAggregator {
  private readonly windows = new Map<string, Accumulator>();
  /** Windows closed early or found final in the table: later records for them are late. */
  private readonly closed = new Map<string, { cityId: string; expiresAt: number }>();
  private floors: Floor[] = [];
  private readonly floorOfCity = new Map<string, number>();
  private maxEventTime = Number.NEGATIVE_INFINITY;
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private lastRecordAt?: number;
  private early = 0;
  /**
   * What the saved state (a full state and the changes after it) holds of each window, once a
   * full state was saved: `delta` writes only what differs from it.
   */
  private saved?: Map<string, number>;

  constructor(private readonly settings: AggregationSettings) {}

  /** The shard's watermark (a city from a faster parent may have a higher one). */
  get watermark(): number {
    return this.watermarkMs;
  }

  get openWindows(): number {
    return this.windows.size - this.early;
  }

  /** The watermark that decides lateness and finality for `cityId`. */
  watermarkOf(cityId: string): number {
    if (this.floors.length === 0) return this.watermarkMs;
    let floor = this.floorOfCity.get(cityId);
    if (floor === undefined) {
      const hash = partitionHash(cityId);
      floor = Number.NEGATIVE_INFINITY;
      for (const f of this.floors) if (inRange(hash, f.range)) floor = Math.max(floor, f.watermark);
      this.floorOfCity.set(cityId, floor);
    }
    return Math.max(this.watermarkMs, floor);
  }

  /**
   * Adds a record that arrived at wall-clock `now`; returns the sizes for which it came too late.
   * Returns how many windows the cap on open windows closed early.
   */
  add(m: Measurement, now: number): AddResult & { closedEarly: number } {
    const eventTime = Date.parse(m.timestamp);
    const late: string[] = [];
    let closedEarly = 0;
    const watermark = this.watermarkOf(m.city_id);
    for (const size of this.settings.sizes) {
      const start = windowStart(eventTime, size.ms);
      const key = windowKey(size.label, m.city_id, start);
      if (start + size.ms + this.settings.allowedLatenessMs <= watermark || this.closed.has(key)) {
        late.push(size.label);
        continue;
      }
      let acc = this.windows.get(key);
      if (!acc) {
        if (this.openWindows >= this.settings.maxOpenWindows) closedEarly += this.closeOldest();
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
          fresh: [],
          dirty: false,
          early: false,
        };
        this.windows.set(key, acc);
      } else if (acc.early) {
        late.push(size.label);
        continue;
      }
      if (acc.ids.has(m.message_id)) continue;
      acc.ids.add(m.message_id);
      if (this.saved) acc.fresh.push(m.message_id);
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
    const counted = Number.isNaN(ingestedAt) ? eventTime : Math.min(eventTime, ingestedAt);
    // A city that came with a parent's higher watermark moves the shard's only where it would
    // have moved its parent's: its late records must not close the other parent's windows.
    if (watermark === this.watermarkMs || counted - this.settings.outOfOrdernessMs > watermark)
      this.maxEventTime = Math.max(this.maxEventTime, counted);
    this.lastRecordAt = now;
    this.advance(this.maxEventTime - this.settings.outOfOrdernessMs);
    return { late, closedEarly };
  }

  /**
   * Moves the watermark on while the shard is caught up and idle, then returns the windows to
   * write: every window now final, and with `flushPartials` the changed open ones. Nothing is
   * forgotten until `confirm` says it was written, so a failed write loses nothing.
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
    this.prune();
    const out: Aggregate[] = [];
    for (const acc of this.windows.values()) {
      if (this.isFinal(acc)) out.push(this.toAggregate(acc, true));
      else if (flushPartials && acc.dirty) out.push(this.toAggregate(acc, false));
    }
    return out;
  }

  /** `written` is stored: final windows are forgotten, the others are clean until they change. */
  confirm(written: Aggregate[]): void {
    for (const a of written) {
      const key = aggregateKey(a);
      const acc = this.windows.get(key);
      if (!acc) continue;
      if (a.final) this.forget(key, acc);
      else if (acc.count === a.record_count) acc.dirty = false;
    }
  }

  /**
   * Takes in what the table refused. A window the table already holds as final is final here
   * too: it is forgotten, later records for it are late, and so are the records this run added
   * beyond the table's count (returned). A partial refused for a larger one stays clean until it
   * changes again.
   */
  reconcile(refused: Refusal[]): number {
    let late = 0;
    for (const { aggregate, existing } of refused) {
      const key = aggregateKey(aggregate);
      const acc = this.windows.get(key);
      if (!acc) continue;
      if (!existing.final) {
        acc.dirty = false;
        continue;
      }
      late += Math.max(0, acc.count - existing.record_count);
      this.forget(key, acc, true);
    }
    return late;
  }

  /** Finalises the oldest tenth of the open windows early (at least one); returns how many. */
  closeOldest(): number {
    // A window already final on time is not "early": it leaves at the next confirm anyway.
    const open = [...this.windows.values()].filter((a) => !a.early && !this.isFinal(a));
    if (open.length === 0) return 0;
    open.sort((a, b) => a.start + a.size - (b.start + b.size) || a.start - b.start);
    const chosen = open.slice(0, Math.max(1, Math.ceil(open.length / 10)));
    for (const acc of chosen) {
      acc.early = true;
      acc.dirty = true;
    }
    this.early += chosen.length;
    return chosen.length;
  }

  /**
   * The state as a compact JSON-able value, as it will be once `written` is confirmed; `restore`
   * takes it back. Without ids, a restored window can no longer tell a duplicate that arrives
   * later (only for oversized state).
   */
  snapshot(options: { written?: Aggregate[]; withoutIds?: boolean } = {}): SnapshotV2 {
    const windows: WindowRow[] = [];
    this.eachSaved(options.written, (a, flags) =>
      windows.push(this.row(a, flags, options.withoutIds ? '' : [...a.ids].join(''))),
    );
    return this.withClocks({ v: 2, windows }, options.written);
  }

  /**
   * What changed since the state was last saved (see `stateSaved`), as it will be once `written`
   * is confirmed: `restore` applies it after the saved state. Undefined until a full state is
   * saved.
   */
  delta(options: { written?: Aggregate[] } = {}): SnapshotV2 | undefined {
    const saved = this.saved;
    if (!saved) return undefined;
    const windows: WindowRow[] = [];
    const kept = new Set<string>();
    this.eachSaved(options.written, (a, flags, key) => {
      kept.add(key);
      if (saved.get(key) !== savedAs(a.count, flags))
        windows.push(this.row(a, flags, a.fresh.join('')));
    });
    const gone = [...saved.keys()].filter((key) => !kept.has(key));
    return this.withClocks({ v: 2, d: 1, windows, gone }, options.written);
  }

  /** The state as it is now (after `confirm`) is saved: the next `delta` starts from it. */
  stateSaved(): void {
    this.saved = new Map();
    for (const [key, a] of this.windows) {
      this.saved.set(key, savedAs(a.count, this.flagsOf(a, a.dirty)));
      a.fresh = [];
    }
  }

  /**
   * Takes back a snapshot, or a full one and the deltas after it, in order; `now` starts the
   * idle clock, as if the last record arrived then. The next save must be a full state.
   */
  restore(snapshot: unknown, now?: number): void {
    const [full, ...deltas] = (Array.isArray(snapshot) ? snapshot : [snapshot]) as SnapshotV2[];
    if ((full?.v !== 1 && full?.v !== 2) || full.d !== undefined)
      throw new Error('unknown window-state version');
    this.lastRecordAt = now;
    this.saved = undefined;
    this.windows.clear();
    this.early = 0;
    this.apply(full);
    for (const delta of deltas) {
      if (delta?.v !== 2 || delta.d !== 1) throw new Error('unknown window-state change');
      for (const key of delta.gone ?? []) {
        const acc = this.windows.get(key);
        if (acc) this.forget(key, acc, false);
      }
      this.apply(delta);
    }
  }

  /**
   * Takes over what parent shards (a split or merge) left for the cities `keep` admits: their
   * open windows, and per parent its watermark as a floor for the cities of its hash range. The
   * shard's own watermark starts at the slowest parent's, so nothing a parent still had open turns
   * late, and nothing a parent had closed reopens.
   */
  adopt(parents: ParentState[], keep: (cityId: string) => boolean, now?: number): void {
    this.lastRecordAt = now;
    this.saved = undefined;
    const others = parents.map((p) => {
      const w = new WindowAggregator(this.settings);
      w.restore(p.snapshot);
      return { w, range: p.range };
    });
    const least = (values: number[]) => {
      const known = values.filter(Number.isFinite);
      return known.length > 0 ? Math.min(...known) : Number.NEGATIVE_INFINITY;
    };
    this.maxEventTime = least(others.map((o) => o.w.maxEventTime));
    this.watermarkMs = least(others.map((o) => o.w.watermarkMs));
    this.floors = [];
    this.floorOfCity.clear();
    for (const { w, range } of others) {
      this.floors.push(...w.floors);
      if (range && Number.isFinite(w.watermarkMs))
        this.floors.push({ range, watermark: w.watermarkMs });
      for (const [key, acc] of w.windows) {
        if (!keep(acc.cityId)) continue;
        this.windows.set(key, { ...acc, fresh: [] });
        if (acc.early) this.early += 1;
      }
      for (const [key, c] of w.closed) if (keep(c.cityId)) this.closed.set(key, c);
    }
    this.prune();
  }

  /**
   * Each window the state keeps once `written` is confirmed (not the final ones it holds), with
   * its flags as they will be then.
   */
  private eachSaved(
    written: Aggregate[] | undefined,
    visit: (a: Accumulator, flags: number, key: string) => void,
  ): void {
    const byKey = new Map((written ?? []).map((a) => [aggregateKey(a), a]));
    for (const [key, a] of this.windows) {
      const w = byKey.get(key);
      if (w?.final) continue;
      visit(a, this.flagsOf(a, a.dirty && !(w && w.record_count === a.count)), key);
    }
  }

  private flagsOf(a: Accumulator, dirty: boolean): number {
    return (dirty ? DIRTY : 0) | (a.early ? EARLY : 0);
  }

  private row(a: Accumulator, flags: number, ids: string): WindowRow {
    const { label, cityId, cityName, start, size, count, pm25, pm10, temperature, aqi } = a;
    return [label, cityId, cityName, start, size, count, pm25, pm10, temperature, aqi, ids, flags];
  }

  /** The watermarks, floors and tombstones, as they will be once `written` is confirmed. */
  private withClocks(
    s: Pick<SnapshotV2, 'v' | 'd' | 'windows' | 'gone'>,
    written: Aggregate[] | undefined,
  ): SnapshotV2 {
    const closed = new Map(this.closed);
    for (const w of written ?? []) {
      const key = aggregateKey(w);
      const acc = this.windows.get(key);
      if (w.final && acc?.early)
        closed.set(key, { cityId: acc.cityId, expiresAt: this.expiry(acc) });
    }
    return {
      ...s,
      maxEventTime: finite(this.maxEventTime),
      watermark: finite(this.watermarkMs),
      floors: this.floors.map((f) => [String(f.range.start), String(f.range.end), f.watermark]),
      closed: [...closed].map(([key, c]) => [key, c.cityId, c.expiresAt]),
    };
  }

  /** Takes in a full state's or a delta's clocks and windows (a delta's ids add to the known). */
  private apply(s: SnapshotV2): void {
    this.maxEventTime = s.maxEventTime ?? Number.NEGATIVE_INFINITY;
    this.watermarkMs = s.watermark ?? Number.NEGATIVE_INFINITY;
    this.floors = (s.floors ?? []).map(([start, end, watermark]) => ({
      range: { start: BigInt(start), end: BigInt(end) },
      watermark,
    }));
    this.floorOfCity.clear();
    this.closed.clear();
    for (const [key, cityId, expiresAt] of s.closed ?? [])
      this.closed.set(key, { cityId, expiresAt });
    const fix = (st: Stats): Stats => [
      st[0],
      st[1] ?? Number.POSITIVE_INFINITY,
      st[2] ?? Number.NEGATIVE_INFINITY,
    ];
    for (const row of s.windows) {
      const [label, cityId, cityName, start, size, count, pm25, pm10, temperature, aqi, ids] = row;
      // Version 1 kept no flags: rewrite every window once to be sure it is stored.
      const flags = s.v === 1 ? DIRTY : (row[11] ?? 0);
      const early = (flags & EARLY) !== 0;
      const key = windowKey(label, cityId, start);
      const known = this.windows.get(key);
      if (known?.early) this.early -= 1;
      if (early) this.early += 1;
      const acc: Accumulator = {
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
        ids: known?.ids ?? new Set(),
        fresh: [],
        dirty: (flags & DIRTY) !== 0,
        early,
      };
      for (const id of ids.match(/.{16}/g) ?? []) acc.ids.add(id);
      this.windows.set(key, acc);
    }
  }

  private isFinal(acc: Accumulator): boolean {
    return acc.early || this.expiry(acc) <= this.watermarkOf(acc.cityId);
  }

  private expiry(acc: Accumulator): number {
    return acc.start + acc.size + this.settings.allowedLatenessMs;
  }

  private forget(key: string, acc: Accumulator, keepClosed = acc.early): void {
    this.windows.delete(key);
    if (acc.early) this.early -= 1;
    if (keepClosed) this.closed.set(key, { cityId: acc.cityId, expiresAt: this.expiry(acc) });
  }

  /** Drops floors the shard's watermark has passed and tombstones the watermark now covers. */
  private prune(): void {
    const before = this.floors.length;
    this.floors = this.floors.filter((f) => f.watermark > this.watermarkMs);
    if (this.floors.length !== before) this.floorOfCity.clear();
    for (const [key, c] of this.closed) {
      if (c.expiresAt <= this.watermarkOf(c.cityId)) this.closed.delete(key);
    }
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
      ...(final && a.early ? { finalised_early: true as const } : {}),
    };
  }
}
