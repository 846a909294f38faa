import { StepResult } from './bench-report';
import { keepRamping, summarize, SummaryInput, summaryMarkdown } from './bench-summary';

const step = (offered: number, over: Partial<StepResult> = {}): StepResult => ({
  offered,
  ingestRate: offered,
  consumedRate: offered,
  backlogStart: 0,
  backlogEnd: 10,
  ackP50Ms: 20,
  ackP99Ms: 50,
  e2eP50Ms: 100,
  e2eP95Ms: 200,
  e2eP99Ms: 300,
  e2eSamples: 300,
  serviceCpuS: 5,
  kinesisCpuS: 3,
  dynamoDbCpuS: 8,
  serviceRssMb: 150.04,
  cpuUsPerMeasurement: 40.04,
  sustained: true,
  ...over,
});

const input = (over: Partial<SummaryInput> = {}): SummaryInput => ({
  service: [
    step(250),
    step(1000, { e2eP99Ms: 640.4 }),
    step(2000),
    step(4000, { sustained: false }),
  ],
  floor: [step(250), step(1000), step(2000), step(4000), step(8000, { sustained: false })],
  plan: [step(250, { sustained: false }), step(500, { sustained: false })],
  visibility: { p99Ms: 212.6, samples: 300 },
  idle: { cpuPercent: 4.567, seconds: 60 },
  skipped: {},
  waitMs: 20_000,
  ...over,
});

describe('benchmark summary', () => {
  it('has exactly the fields of issue 13, read off the steps of each design', () => {
    const { summary, notes } = summarize(input());
    expect(summary).toEqual({
      sustained_per_s: 2000,
      floor_per_s: 4000,
      plan_sustained_per_s: 0,
      ratio_to_floor: 0.5,
      e2e_p99_ms_at_1000: 640,
      e2e_p99_ms_at_20: 213,
      cpu_us_per_measurement_at_2000: 40,
      rss_mb_at_2000: 150,
      idle_cpu_percent_32_shards: 4.57,
    });
    expect(notes).toEqual([]);
  });

  it('is null only for a part the run skipped by a flag, and says which flag', () => {
    const { summary, notes } = summarize(
      input({
        floor: [],
        visibility: undefined,
        idle: undefined,
        skipped: {
          floor: '--skip-floor',
          visibility: '--visibility-count 0',
          idle: '--idle-seconds 0',
        },
      }),
    );
    expect(summary.floor_per_s).toBeNull();
    expect(summary.ratio_to_floor).toBeNull();
    expect(summary.e2e_p99_ms_at_20).toBeNull();
    expect(summary.idle_cpu_percent_32_shards).toBeNull();
    expect(summary.sustained_per_s).toBe(2000);
    expect(notes.join('\n')).toMatch(/floor_per_s: .*--skip-floor/);
    expect(notes.join('\n')).toMatch(/e2e_p99_ms_at_20: .*--visibility-count 0/);
  });

  it('reports a p99 past the wait as that lower bound, and a sustained top step as a lower bound', () => {
    const { summary, notes } = summarize(
      input({
        service: [step(1000, { e2eP99Ms: Number.POSITIVE_INFINITY, sustained: false }), step(2000)],
      }),
    );
    expect(summary.e2e_p99_ms_at_1000).toBe(20_000);
    expect(summary.sustained_per_s).toBe(2000);
    expect(notes.some((n) => n.startsWith('e2e_p99_ms_at_1000: some samples'))).toBe(true);
    expect(notes.some((n) => n.startsWith('sustained_per_s: the highest step offered'))).toBe(true);
  });

  it('names a summary step missing from --steps and a floor that sustained nothing', () => {
    const { summary, notes } = summarize(
      input({ service: [step(250)], floor: [step(250, { sustained: false })] }),
    );
    expect(summary.e2e_p99_ms_at_1000).toBeNull();
    expect(summary.cpu_us_per_measurement_at_2000).toBeNull();
    expect(summary.ratio_to_floor).toBeNull();
    expect(notes).toContain('e2e_p99_ms_at_1000: no 1000/s step in this run (--steps)');
    expect(notes).toContain('ratio_to_floor: the floor sustained no step, so there is no ratio');
  });

  it('renders one row per field, with the targets', () => {
    const { summary, notes } = summarize(input());
    const md = summaryMarkdown(summary, notes);
    expect(md.split('\n').filter((l) => l.startsWith('| `'))).toHaveLength(9);
    expect(md).toContain('| `sustained_per_s` | 2000 | ≥ 4,000 |');
    expect(md).toMatch(/\| `ratio_to_floor` \| [^|]+ \| ≥ 0\.85 \|/);
    expect(md).toMatch(/\| `rss_mb_at_2000` \| [^|]+ \| < 200 \|/);
    expect(md).toMatch(/\| `idle_cpu_percent_32_shards` \| [^|]+ \| < 3 \|/);
  });

  it('ramps on past two unsustained steps only while a step the summary needs is still to come', () => {
    const bad = [step(250, { sustained: false }), step(500, { sustained: false })];
    expect(keepRamping(bad, [1000, 2000, 4000], [1000, 2000])).toBe(true);
    expect(keepRamping(bad, [4000, 8000], [1000, 2000])).toBe(false);
    expect(keepRamping(bad, [1000], [])).toBe(false);
    expect(keepRamping([step(250), step(500, { sustained: false })], [1000], [])).toBe(true);
  });
});
