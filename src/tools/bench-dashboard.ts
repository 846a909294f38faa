import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { CREDENTIALS, cpuSeconds, LISTENING, log, start, startEmulators } from './bench-processes';
import { runLoad } from './load-generator';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Viewer {
  events: number;
  bytes: number;
  close(): void;
}

/** An EventSource's worth of client: reads /events and counts what arrives. */
function openViewer(url: string): Promise<Viewer> {
  return new Promise((resolveViewer, reject) => {
    const viewer: Viewer = { events: 0, bytes: 0, close: () => req.destroy() };
    const req = request(`${url}/events`, (response) => {
      if (response.statusCode !== 200) reject(new Error(`/events answered ${response.statusCode}`));
      response.on('data', (chunk: Buffer) => {
        viewer.bytes += chunk.length;
        viewer.events += chunk.toString().split('\n\n').length - 1;
      });
      resolveViewer(viewer);
    });
    req.on('error', (error) => (viewer.bytes === 0 ? reject(error) : undefined));
    req.end();
  });
}

/**
 * The dashboard's cost: the service's CPU at a steady ingest rate with no open event stream, then
 * with `--streams` of them, then with none again (so drift shows), on embedded emulators.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '500' },
      streams: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '30' },
      cities: { type: 'string', default: '100' },
    },
  });
  const rate = Number(values.rate);
  const streams = Number(values.streams);
  const seconds = Number(values.seconds);
  const cities = Number(values.cities);
  const id = randomBytes(3).toString('hex');
  const children: ChildProcess[] = [];
  try {
    const emulators = await startEmulators(`dash-${id}`, 4);
    children.push(emulators.child);
    const { kinesisUrl } = emulators;
    const service = await start(
      'main.js',
      {
        ...CREDENTIALS,
        BACKEND: 'aws',
        AWS_ENDPOINT_URL_KINESIS: kinesisUrl,
        AWS_ENDPOINT_URL_DYNAMODB: emulators.dynamoUrl,
        KINESIS_STREAM_NAME: `dash-${id}`,
        PROVISION_RESOURCES: 'true',
        SIMULATOR_ENABLED: 'false',
        RATE_LIMIT_PER_MINUTE: '0',
        LOG_LEVEL: 'info',
        PORT: '0',
      },
      LISTENING,
    );
    children.push(service.child);
    const url = service.match[1];
    const load = (durationS: number) =>
      runLoad({
        target: url,
        rate,
        cities,
        durationS,
        batch: 20,
        seed: 11,
        duplicates: 0,
        outOfOrder: 0,
        late: 0,
      });
    log('warming up for 10 s…');
    await load(10);

    const rows: string[] = [];
    const phase = async (name: string, viewers: Viewer[]) => {
      log(`${name}: ${seconds} s at ${rate}/s…`);
      const cpu0 = cpuSeconds(service.child.pid);
      const before = viewers.map((v) => ({ ...v }));
      const report = await load(seconds);
      const cpu = cpuSeconds(service.child.pid) - cpu0;
      const events = viewers.reduce((n, v, i) => n + v.events - before[i].events, 0);
      const bytes = viewers.reduce((n, v, i) => n + v.bytes - before[i].bytes, 0);
      const perViewer = viewers.length ? (events / viewers.length / seconds).toFixed(1) : '–';
      const kbPerViewer = viewers.length
        ? (bytes / viewers.length / seconds / 1024).toFixed(1)
        : '–';
      rows.push(
        `| ${name} | ${viewers.length} | ${Math.round(report.achievedRate)} | ${cpu.toFixed(1)} | ${((cpu / seconds) * 100).toFixed(1)} % | ${perViewer} | ${kbPerViewer} |`,
      );
      return cpu;
    };
    const idle = await phase('no stream', []);
    const viewers = await Promise.all(Array.from({ length: streams }, () => openViewer(url)));
    const watched = await phase(`${streams} streams`, viewers);
    for (const viewer of viewers) viewer.close();
    const after = await phase('no stream again', []);
    const baseline = (idle + after) / 2;
    process.stdout.write(
      [
        `Dashboard cost at ${rate} measurements/s from ${cities} cities, ${seconds} s a phase (service process only):`,
        '',
        '| phase | open event streams | ingested /s | service CPU s | of one core | events /s per stream | KB/s per stream |',
        '|---|---|---|---|---|---|---|',
        ...rows,
        '',
        `${streams} streams cost ${(watched - baseline).toFixed(1)} CPU-s per ${seconds} s, ${(((watched - baseline) / seconds) * 100).toFixed(1)} % of one core (${(((watched - baseline) / baseline) * 100).toFixed(0)} % over the service's own work).`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench:dashboard failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
