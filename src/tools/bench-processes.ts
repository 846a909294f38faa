import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const DIST = resolve(__dirname, '..');

/** The emulators' dummy credentials, for the service and the tools that talk to them. */
export const CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'embedded',
  AWS_SECRET_ACCESS_KEY: 'embedded',
  AWS_REGION: 'us-east-1',
};

/** Starts a built script of dist/ and resolves once a line of its output matches `ready`. */
export function start(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; lines: string[]; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [join(DIST, script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
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
