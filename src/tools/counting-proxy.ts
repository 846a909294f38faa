import { Agent, createServer, IncomingMessage, request, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { readUnits } from './read-units';

const READS = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem']);

function body(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/**
 * An HTTP proxy in front of DynamoDB Local that counts calls by operation (the `X-Amz-Target`
 * header) and estimates the read units of the reads on one watched table from the items they
 * return. The service under test is pointed at it and needs no change.
 */
export class CountingProxy {
  readonly calls = new Map<string, number>();
  readUnits = 0;
  watchedTable?: string;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });
  private server?: Server;

  constructor(private readonly upstream: URL) {}

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.forward(req, res).catch((error: Error) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(error.message);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Zeroes the counters (and watches `table` for read units). */
  reset(table?: string): void {
    this.calls.clear();
    this.readUnits = 0;
    this.watchedTable = table;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async forward(req: IncomingMessage, res: import('node:http').ServerResponse) {
    const operation =
      String(req.headers['x-amz-target'] ?? '')
        .split('.')
        .pop() ?? '';
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
    const payload = await body(req);
    const table = this.watchedTable;
    const watch = READS.has(operation) && table !== undefined && payload.includes(table);
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const out = request(
        {
          host: this.upstream.hostname,
          port: this.upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: this.agent,
        },
        resolve,
      );
      out.once('error', reject);
      out.end(payload);
    });
    res.writeHead(upstream.statusCode ?? 502, upstream.headers);
    if (!watch) {
      upstream.pipe(res);
      return;
    }
    const answer = await body(upstream);
    res.end(answer);
    if (upstream.statusCode !== 200 || upstream.headers['content-encoding']) return;
    this.readUnits += readUnits(
      operation,
      table,
      JSON.parse(payload.toString()) as Record<string, unknown>,
      JSON.parse(answer.toString()) as Record<string, unknown>,
    );
  }
}
