import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { accessLog } from '../common/request-logging';
import { DashboardSessions, SESSION_COOKIE } from './dashboard-session';

/** Sends one request through the access log and returns the lines it wrote. */
async function logged(path: string, headers: Record<string, string>): Promise<string> {
  const lines: string[] = [];
  const log = accessLog(pino({ level: 'info' }, { write: (line: string) => lines.push(line) }));
  const server = createServer((req, res) => log(req, res, () => res.end('ok')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) =>
    request({ port, path, headers, method: 'POST' }, (res) => res.resume().on('end', resolve))
      .on('error', reject)
      .end(),
  );
  await new Promise((resolve) => server.close(resolve));
  return lines.join('\n');
}

describe('the dashboard in the access log', () => {
  it('logs neither the key nor the session token, in headers or cookies', async () => {
    const key = 'secret-key-123';
    const { token } = new DashboardSessions([key]).issue();
    for (const path of ['/dashboard/session', '/events', '/']) {
      const line = await logged(path, {
        'x-api-key': key,
        cookie: `${SESSION_COOKIE}=${token}`,
      });
      expect(line).toContain(`"url":"${path}"`);
      expect(line).not.toContain(key);
      expect(line).not.toContain(token.split('.')[1]);
    }
  });
});
