import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';

export interface FreezableProxy {
  /** `http://127.0.0.1:<port>`: point a client's endpoint here. */
  url: string;
  /** Connections accepted so far (new ones are accepted while frozen, then held). */
  readonly connections: number;
  /**
   * Stops forwarding bytes in both directions; new connections are accepted and held. Every socket
   * stays open, so a call in flight neither fails nor answers: it hangs, as against a server that
   * was SIGSTOPped.
   */
  freeze(): void;
  /** Forwards everything that was held (in order, to the sockets still open) and flows again. */
  thaw(): void;
  close(): Promise<void>;
}

type Held = { to: Socket; chunk: Buffer | 'end' };

/** A TCP proxy on 127.0.0.1 (a free port) in front of `target` (`http://host:port`). */
export async function startFreezableProxy(target: string): Promise<FreezableProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let held: Held[] = [];
  let frozen = false;
  let connections = 0;

  const forward = ({ to, chunk }: Held) => {
    if (to.destroyed) return;
    if (chunk === 'end') to.end();
    else to.write(chunk);
  };
  const pipe = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) =>
      frozen ? held.push({ to, chunk }) : forward({ to, chunk }),
    );
    from.on('end', () =>
      frozen ? held.push({ to, chunk: 'end' }) : forward({ to, chunk: 'end' }),
    );
    // A side that goes away (the client gave up on a timeout) takes the other with it.
    from.on('close', () => to.destroy());
    from.on('error', () => from.destroy());
  };

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    connections += 1;
    const upstream = connect({ host: hostname, port: Number(port), allowHalfOpen: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      const pending = held;
      held = [];
      pending.forEach(forward);
    },
    async close() {
      held = [];
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
