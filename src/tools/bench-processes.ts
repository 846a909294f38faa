import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

export const DIST = resolve(__dirname, '..');

/** The emulators' dummy credentials, for the service and the tools that talk to them. */
export const CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'embedded',
  AWS_SECRET_ACCESS_KEY: 'embedded',
  AWS_REGION: 'us-east-1',
};
export const log = (line: string) => process.stderr.write(`${line}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The service's start-up line, with its URL. */
export const LISTENING = /listening on (http:\/\/localhost:\d+)/;

export interface Started {
  child: ChildProcess;
  lines: string[];
  match: RegExpExecArray;
}

/** Starts `script` from dist/ and resolves once a line of its output matches `ready`. */
export function start(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<Started> {
  const child = spawn(process.execPath, [join(DIST, script)], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not start:\n${lines.join('\n')}`)),
      60_000,
    );
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        lines.push(line);
        if (lines.length > 2000) lines.shift();
        const match = ready.exec(line);
        if (match) {
          clearTimeout(timer);
          resolveStart({ child, lines, match });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`${script} exited with ${code}:\n${lines.join('\n')}`)),
    );
  });
}

/** Stops a child and waits for it to exit (SIGKILL after `graceMs`). */
/**
 * The embedded emulators in memory on free ports, with `stream` (of `shards`) provisioned; their
 * process and the endpoints a service instance is pointed at.
 */
export async function startEmulators(
  stream: string,
  shards: number,
): Promise<{ child: ChildProcess; kinesisUrl: string; dynamoUrl: string }> {
  log('starting the emulators…');
  const emulators = await start(
    'emulators.js',
    {
      EMBEDDED_KINESIS_PORT: '0',
      EMBEDDED_DYNAMODB_PORT: '0',
      DATA_DIR: '',
      KINESIS_STREAM_NAME: stream,
      KINESIS_SHARD_COUNT: String(shards),
    },
    /AWS_ENDPOINT_URL_DYNAMODB=(\S+)/,
  );
  return {
    child: emulators.child,
    kinesisUrl: /AWS_ENDPOINT_URL_KINESIS=(\S+)/.exec(emulators.lines.join('\n'))![1],
    dynamoUrl: emulators.match[1],
  };
}

export async function stop(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** user + system CPU seconds of a process, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

export function rssMb(pid: number | undefined): number {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The emulator processes under the `npm run emulators` process: kinesalite and the JVM. */
export function emulatorPids(root: number): { kinesis?: number; dynamoDb?: number } {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const found: { kinesis?: number; dynamoDb?: number } = {};
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes('kinesalite'))) found.kinesis = child;
      // The JVM itself, under whatever path (`java`, `/usr/bin/java`), not a shell around it.
      if (basename(argv[0]) === 'java' && argv.some((a) => a.includes('DynamoDBLocal.jar')))
        found.dynamoDb = child;
      walk(child);
    }
  };
  walk(root);
  return found;
}

/** The sum of a Prometheus metric's samples (all label sets) on the service's /metrics. */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

/** Waits until the service holds `count` leases (or `maxMs` passed); returns how many it holds. */
export async function waitForLeases(url: string, count: number, maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let held = 0;
  while (Date.now() < deadline) {
    held = await metric(url, 'aq_leases_held');
    if (held >= count) return held;
    await sleep(500);
  }
  return held;
}
