/** Records sampled a step for end-to-end latency, by every design alike… */
export const SAMPLES = 300;
/** …and how long a sample may take to show up before it counts as never. */
export const SAMPLE_WAIT_MS = 20_000;

/** One load step of one consumer design. */
export interface StepResult {
  offered: number;
  ingestRate: number;
  consumedRate: number;
  backlogStart: number;
  backlogEnd: number;
  ackP50Ms: number;
  ackP99Ms: number;
  e2eP50Ms: number;
  e2eP95Ms: number;
  e2eP99Ms: number;
  e2eSamples: number;
  serviceCpuS: number;
  kinesisCpuS: number;
  dynamoDbCpuS: number;
  consumerCpuS?: number;
  serviceRssMb: number;
  cpuUsPerMeasurement: number;
  sustained: boolean;
}

/**
 * The name of a run's report files: `<date>`, or `<date>-scaling` for the scaling table alone,
 * then `-<label>` when given; followed by `-2`, `-3`… when `taken` (the names already in the
 * results directory) holds a report of that name, so that a run never overwrites an earlier one.
 */
export function reportName(
  date: string,
  options: { scalingOnly: boolean; label?: string },
  taken: string[],
): string {
  const base = [date, options.scalingOnly ? 'scaling' : '', options.label ?? '']
    .filter((part) => part !== '')
    .join('-');
  const used = new Set(taken);
  const isTaken = (name: string) => ['json', 'md', 'svg'].some((ext) => used.has(`${name}.${ext}`));
  let name = base;
  for (let n = 2; isTaken(name); n++) name = `${base}-${n}`;
  return name;
}

/** Backlog not growing (by more than half a second of load) and end-to-end p99 under 1 s. */
export function isSustained(
  step: Pick<StepResult, 'offered' | 'backlogStart' | 'backlogEnd' | 'e2eP99Ms' | 'ingestRate'>,
): boolean {
  const growth = step.backlogEnd - step.backlogStart;
  return (
    growth <= Math.max(50, step.offered * 0.5) &&
    step.e2eP99Ms < 1000 &&
    step.ingestRate >= step.offered * 0.9
  );
}

export function highestSustained(steps: StepResult[]): number {
  return steps.filter((s) => s.sustained).reduce((best, s) => Math.max(best, s.offered), 0);
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '—');

export function markdownTable(title: string, steps: StepResult[]): string {
  const rows = steps.map(
    (s) =>
      `| ${s.offered} | ${s.ingestRate.toFixed(0)} | ${s.consumedRate.toFixed(0)} | ${s.backlogStart} → ${s.backlogEnd} | ${ms(s.ackP50Ms)} / ${ms(s.ackP99Ms)} | ${ms(s.e2eP50Ms)} / ${ms(s.e2eP95Ms)} / ${ms(s.e2eP99Ms)} | ${s.serviceCpuS.toFixed(1)} | ${s.kinesisCpuS.toFixed(1)} / ${s.dynamoDbCpuS.toFixed(1)} | ${s.serviceRssMb.toFixed(0)} | ${s.cpuUsPerMeasurement.toFixed(0)} | ${s.sustained ? 'yes' : 'no'} |`,
  );
  return [
    `**${title}** — highest sustained step: ${highestSustained(steps) || 'none'} measurements/s`,
    '',
    '| offered /s | ingested /s | consumed /s | backlog | ack p50 / p99 ms | end-to-end p50 / p95 / p99 ms | service CPU s | Kinesis / DynamoDB CPU s | RSS MB | CPU µs / measurement | sustained |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** An SVG line chart of end-to-end p99 against offered load (log-log), one line per design. */
export function p99Chart(series: { name: string; color: string; steps: StepResult[] }[]): string {
  const W = 640;
  const H = 360;
  const pad = { l: 70, r: 20, t: 30, b: 50 };
  const all = series.flatMap((s) => s.steps);
  const xs = all.map((s) => s.offered);
  const ys = all.map((s) => Math.min(Math.max(s.e2eP99Ms, 1), 60_000));
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs))];
  const [y0, y1] = [
    Math.log10(Math.max(1, Math.min(...ys) / 2)),
    Math.log10(Math.max(...ys, 2000) * 1.5),
  ];
  const px = (v: number) => pad.l + ((Math.log10(v) - x0) / (x1 - x0 || 1)) * (W - pad.l - pad.r);
  const py = (v: number) =>
    H - pad.b - ((Math.log10(Math.max(v, 1)) - y0) / (y1 - y0)) * (H - pad.t - pad.b);
  const lines = series.map((s, i) => {
    const points = s.steps.map(
      (st) => `${px(st.offered).toFixed(1)},${py(Math.min(st.e2eP99Ms, 60_000)).toFixed(1)}`,
    );
    return [
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.join(' ')}"/>`,
      ...s.steps.map(
        (st) =>
          `<circle cx="${px(st.offered).toFixed(1)}" cy="${py(Math.min(st.e2eP99Ms, 60_000)).toFixed(1)}" r="3" fill="${s.color}"/>`,
      ),
      `<text x="${W - pad.r - 200}" y="${pad.t + 16 * i}" fill="${s.color}" font-size="12">${s.name}</text>`,
    ].join('');
  });
  const xTicks = [...new Set(xs)].map(
    (v) =>
      `<text x="${px(v)}" y="${H - pad.b + 16}" font-size="11" text-anchor="middle">${v}</text>`,
  );
  const yTicks = [1, 10, 100, 1000, 10000, 60000]
    .filter((v) => Math.log10(v) >= y0 && Math.log10(v) <= y1)
    .map(
      (v) =>
        `<text x="${pad.l - 6}" y="${py(v) + 4}" font-size="11" text-anchor="end">${v}</text><line x1="${pad.l}" x2="${W - pad.r}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`,
    );
  const oneSecond = `<line x1="${pad.l}" x2="${W - pad.r}" y1="${py(1000)}" y2="${py(1000)}" stroke="#c00" stroke-dasharray="4 3"/>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    ...yTicks,
    oneSecond,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="black"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="black"/>`,
    ...xTicks,
    `<text x="${(W + pad.l) / 2}" y="${H - 10}" font-size="12" text-anchor="middle">offered load (measurements/s)</text>`,
    `<text x="16" y="${H / 2}" font-size="12" transform="rotate(-90 16 ${H / 2})" text-anchor="middle">end-to-end p99 (ms)</text>`,
    ...lines,
    '</svg>',
  ].join('\n');
}
