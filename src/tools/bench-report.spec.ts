import {
  highestSustained,
  isSustained,
  markdownTable,
  p99Chart,
  reportName,
  StepResult,
} from './bench-report';

const step = (over: Partial<StepResult>): StepResult => ({
  offered: 1000,
  ingestRate: 1000,
  consumedRate: 1000,
  backlogStart: 0,
  backlogEnd: 10,
  ackP50Ms: 20,
  ackP99Ms: 50,
  e2eP50Ms: 100,
  e2eP95Ms: 200,
  e2eP99Ms: 300,
  e2eSamples: 200,
  serviceCpuS: 5,
  kinesisCpuS: 3,
  dynamoDbCpuS: 8,
  serviceRssMb: 150,
  cpuUsPerMeasurement: 40,
  sustained: true,
  ...over,
});

describe('benchmark report', () => {
  it('calls a step sustained only with a flat backlog, p99 under 1 s and the offered rate ingested', () => {
    expect(isSustained(step({}))).toBe(true);
    expect(isSustained(step({ backlogEnd: 600 }))).toBe(false);
    expect(isSustained(step({ e2eP99Ms: 1000 }))).toBe(false);
    expect(isSustained(step({ ingestRate: 800 }))).toBe(false);
    expect(
      isSustained(step({ offered: 8000, ingestRate: 8000, backlogStart: 100, backlogEnd: 3000 })),
    ).toBe(true);
  });

  it('names the highest sustained step, not the last one', () => {
    const steps = [
      step({ offered: 250 }),
      step({ offered: 500 }),
      step({ offered: 1000, sustained: false }),
      step({ offered: 2000 }),
    ];
    expect(highestSustained(steps)).toBe(2000);
    expect(highestSustained([step({ sustained: false })])).toBe(0);
  });

  it('renders a table row per step and a chart with a line per design', () => {
    const table = markdownTable('ours', [
      step({ offered: 250 }),
      step({ offered: 500, sustained: false }),
    ]);
    expect(
      table.split('\n').filter((l) => l.startsWith('| 250') || l.startsWith('| 500')),
    ).toHaveLength(2);
    expect(table).toContain('highest sustained step: 250');
    const svg = p99Chart([
      { name: 'ours', color: '#06c', steps: [step({ offered: 250 }), step({ offered: 500 })] },
      { name: 'plan', color: '#c60', steps: [step({ offered: 250, e2eP99Ms: 30000 })] },
    ]);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('</svg>');
  });

  describe('report names', () => {
    const day = '2026-12-02';

    it('names a run by its date, the scaling table alone and the label', () => {
      expect(reportName(day, { scalingOnly: false }, [])).toBe(day);
      expect(reportName(day, { scalingOnly: true }, [])).toBe(`${day}-scaling`);
      expect(reportName(day, { scalingOnly: false, label: 'seventh' }, [])).toBe(`${day}-seventh`);
      expect(reportName(day, { scalingOnly: true, label: 'third' }, [])).toBe(
        `${day}-scaling-third`,
      );
    });

    it('never reuses the name of a report already in the directory', () => {
      const taken = [`${day}.json`, `${day}.md`, `${day}.svg`, `${day}-2.md`, 'latest.md'];
      expect(reportName(day, { scalingOnly: false }, taken)).toBe(`${day}-3`);
      expect(reportName(day, { scalingOnly: true }, taken)).toBe(`${day}-scaling`);
      expect(reportName(day, { scalingOnly: false, label: 'x' }, [`${day}-x.svg`])).toBe(
        `${day}-x-2`,
      );
    });
  });
});
