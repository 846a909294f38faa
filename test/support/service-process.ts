import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { auditService } from './response-audit';

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  logs: string[];
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

const MAIN = join(__dirname, '..', '..', 'dist', 'main.js');

/** The built server (`npm test` builds it first) as a child process, on a free port. */
export async function spawnService(
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [MAIN], {
    // The start is detected from the 'listening on' line, an info line.
    env: { ...process.env, ...env, PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`service did not start:\n${logs.join('\n')}`));
    }, timeoutMs);
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        const match = /listening on (http:\/\/localhost:\d+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} while starting:\n${logs.join('\n')}`));
    });
  });
  // Its OpenAPI document, for the audit of its responses, while it surely answers.
  await auditService(url);
  return {
    url,
    child,
    logs,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The consumer part of a child instance's readiness (whatever the status, 200 or 503). */
export async function consumerHealth(service: ServiceProcess): Promise<{ leases_held: number }> {
  const res = await fetch(`${service.url}/health/ready`);
  const body = (await res.json()) as {
    details?: { consumer?: { leases_held: number } };
    info?: { consumer?: { leases_held: number } };
    error?: { consumer?: { leases_held: number } };
  };
  return (body.details ?? body.info ?? body.error)!.consumer!;
}
