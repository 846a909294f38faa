/** A tumbling window size, aligned to the UTC epoch. */
export interface WindowSize {
  label: string;
  ms: number;
}

/** How a shard's windows are cut and closed (AGGREGATION_* in the configuration). */
export interface AggregationSettings {
  sizes: WindowSize[];
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  idleMs: number;
  /** Open windows per shard; at the cap the oldest tenth is finalised early. */
  maxOpenWindows: number;
}

/** Parses `5m,1h` style lists; throws on anything else. */
export function parseWindowSizes(list: string): WindowSize[] {
  const sizes = list.split(',').map((part) => {
    const match = /^\s*(\d{1,4})([mh])\s*$/.exec(part);
    if (!match || Number(match[1]) === 0)
      throw new Error(`"${part.trim()}" is not a window size like 5m or 1h`);
    const n = Number(match[1]);
    return { label: `${n}${match[2]}`, ms: n * (match[2] === 'm' ? 60_000 : 3_600_000) };
  });
  const labels = new Set(sizes.map((s) => s.label));
  if (labels.size !== sizes.length) throw new Error('window sizes must be distinct');
  return sizes;
}

export const windowStart = (eventTime: number, size: number) => Math.floor(eventTime / size) * size;
