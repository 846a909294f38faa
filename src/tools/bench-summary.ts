import { highestSustained, StepResult } from './bench-report';

/** The figures of issue 13, at the top of every report; `null` only where the run skipped a part. */
export interface BenchSummary {
  sustained_per_s: number | null;
  floor_per_s: number | null;
  plan_sustained_per_s: number | null;
  ratio_to_floor: number | null;
  e2e_p99_ms_at_1000: number | null;
  e2e_p99_ms_at_20: number | null;
  cpu_us_per_measurement_at_2000: number | null;
  rss_mb_at_2000: number | null;
  idle_cpu_percent_32_shards: number | null;
}

export type Part = 'service' | 'floor' | 'plan' | 'visibility' | 'idle';

export interface SummaryInput {
  service: StepResult[];
  floor: StepResult[];
  plan: StepResult[];
  /** POST ack → readable through GET latest, one POST at a time at 20/s. */
  visibility?: { p99Ms: number; samples: number };
  idle?: { cpuPercent: number; seconds: number };
  /** The parts the run skipped, each with the flag that skipped it. */
  skipped: Partial<Record<Part, string>>;
  /** How long a sample was waited for: an end-to-end p99 past it is reported as this lower bound. */
  waitMs: number;
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

/** The summary of a run and one note per figure that is null, a lower bound or otherwise qualified. */
export function summarize(input: SummaryInput): { summary: BenchSummary; notes: string[] } {
  const notes: string[] = [];
  const skippedBy = (part: Part, field: string) => {
    const flag = input.skipped[part];
    if (flag) notes.push(`${field}: not measured, this run skipped it (${flag})`);
    return flag !== undefined;
  };
  const atStep = (offered: number, field: string) => {
    if (skippedBy('service', field)) return undefined;
    const step = input.service.find((s) => s.offered === offered);
    if (!step) notes.push(`${field}: no ${offered}/s step in this run (--steps)`);
    return step;
  };
  const p99 = (value: number, field: string) => {
    if (Number.isFinite(value)) return Math.round(value);
    notes.push(
      `${field}: some samples were not readable within ${input.waitMs} ms; the figure is that lower bound`,
    );
    return input.waitMs;
  };
  const best = (part: 'service' | 'floor' | 'plan', field: string) => {
    if (skippedBy(part, field)) return null;
    const steps = input[part];
    const value = highestSustained(steps);
    const top = Math.max(0, ...steps.map((s) => s.offered));
    if (value > 0 && value === top)
      notes.push(`${field}: the highest step offered was sustained, so this is a lower bound`);
    return value;
  };

  const sustained = best('service', 'sustained_per_s');
  const floor = best('floor', 'floor_per_s');
  const plan = best('plan', 'plan_sustained_per_s');
  let ratio: number | null = null;
  if (sustained !== null && floor !== null) {
    if (floor > 0) ratio = round(sustained / floor, 3);
    else notes.push('ratio_to_floor: the floor sustained no step, so there is no ratio');
  }
  const at1000 = atStep(1000, 'e2e_p99_ms_at_1000');
  const at2000 = atStep(2000, 'cpu_us_per_measurement_at_2000, rss_mb_at_2000');
  let at20: number | null = null;
  if (!skippedBy('visibility', 'e2e_p99_ms_at_20') && input.visibility)
    at20 = p99(input.visibility.p99Ms, 'e2e_p99_ms_at_20');
  let idle: number | null = null;
  if (!skippedBy('idle', 'idle_cpu_percent_32_shards') && input.idle)
    idle = round(input.idle.cpuPercent, 2);
  return {
    summary: {
      sustained_per_s: sustained,
      floor_per_s: floor,
      plan_sustained_per_s: plan,
      ratio_to_floor: ratio,
      e2e_p99_ms_at_1000: at1000 ? p99(at1000.e2eP99Ms, 'e2e_p99_ms_at_1000') : null,
      e2e_p99_ms_at_20: at20,
      cpu_us_per_measurement_at_2000: at2000 ? round(at2000.cpuUsPerMeasurement, 1) : null,
      rss_mb_at_2000: at2000 ? round(at2000.serviceRssMb, 1) : null,
      idle_cpu_percent_32_shards: idle,
    },
    notes,
  };
}

const TARGETS: Partial<Record<keyof BenchSummary, string>> = {
  sustained_per_s: '≥ 4,000',
  ratio_to_floor: '≥ 0.85',
  e2e_p99_ms_at_1000: '< 300',
  e2e_p99_ms_at_20: '< 300',
  cpu_us_per_measurement_at_2000: '≤ 100',
  rss_mb_at_2000: '< 200',
  idle_cpu_percent_32_shards: '< 3',
};

export function summaryMarkdown(summary: BenchSummary, notes: string[]): string {
  const rows = (Object.keys(summary) as (keyof BenchSummary)[]).map(
    (field) => `| \`${field}\` | ${summary[field] ?? 'not measured'} | ${TARGETS[field] ?? ''} |`,
  );
  return [
    '| summary | value | target (issue 13) |',
    '|---|---|---|',
    ...rows,
    ...(notes.length > 0 ? ['', ...notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}

/**
 * Whether the ramp goes on: it stops after two steps in a row that were not sustained, unless a
 * step the summary needs (`required`) is still to come.
 */
export function keepRamping(done: StepResult[], remaining: number[], required: number[]): boolean {
  const lastTwo = done.slice(-2);
  if (lastTwo.length < 2 || lastTwo.some((s) => s.sustained)) return true;
  return remaining.some((offered) => required.includes(offered));
}
