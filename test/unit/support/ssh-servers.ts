/**
 * SSH servers for unit tests of the SSH layer, on loopback: ssh2's server with a fresh host key.
 * `execServer` runs commands in the local /bin/sh; `jumpServer` is a bastion that forwards
 * direct-tcpip channels, as OpenSSH's `AllowTcpForwarding yes` does.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import ssh2 from 'ssh2';

export interface TestSshServer {
  server: ssh2.Server;
  port: number;
  /** A known_hosts line pinning this server's key as `[127.0.0.1]:<port>`. */
  knownHostsLine: string;
  /** Client connections accepted so far, and those still open. */
  stats: { connections: number; open: Set<ssh2.Connection>; forwards: number };
  close(): void;
}

/**
 * A fresh ed25519 key pair that ssh2 can read back. ssh2's own generator writes a malformed
 * private key about once in 200 (measured: 23 of 5,000; the public half comes out 31 bytes), which
 * its parser then refuses: a test using it would fail at random, so draw again.
 */
export function testKeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
}

type Setup = (client: ssh2.Connection, stats: TestSshServer['stats']) => void;

async function listen(setup: Setup, acceptKey?: string): Promise<TestSshServer> {
  const hostKey = testKeyPair();
  const stats: TestSshServer['stats'] = { connections: 0, open: new Set(), forwards: 0 };
  const allowed = acceptKey === undefined ? undefined : ssh2.utils.parseKey(acceptKey);
  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    stats.connections += 1;
    stats.open.add(client);
    client.on('close', () => stats.open.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', (context) => {
      const keyOk = context.method === 'publickey' && (!allowed || (!(allowed instanceof Error) && context.key.data.equals(allowed.getPublicSSH())));
      if (keyOk) context.accept();
      else context.reject(['publickey']);
    });
    setup(client, stats);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const [type, key] = hostKey.public.split(' ');
  return {
    server,
    port,
    knownHostsLine: `[127.0.0.1]:${port} ${type} ${key}`,
    stats,
    close: () => {
      for (const client of stats.open) client.end();
      server.close();
    },
  };
}

/** Runs each exec request with the local /bin/sh. */
export function execServer(): Promise<TestSshServer> {
  return listen((client) => {
    client.on('session', (acceptSession) => {
      acceptSession().on('exec', (acceptExec, _reject, info) => {
        const stream = acceptExec();
        const child = spawn('/bin/sh', ['-c', info.command], { stdio: 'pipe' });
        stream.pipe(child.stdin);
        child.stdout.pipe(stream, { end: false });
        child.stderr.pipe(stream.stderr, { end: false });
        child.on('close', (code) => {
          stream.exit(code ?? 255);
          stream.end();
        });
      });
    });
  });
}

/** A bastion accepting only `acceptKey`; forwards to loopback ports unless `refuse.forwards` is set. */
export function jumpServer(acceptKey: string, refuse = { forwards: false }): Promise<TestSshServer> {
  return listen((client, stats) => {
    client.on('tcpip', (accept, reject, info) => {
      if (refuse.forwards) return reject();
      stats.forwards += 1;
      const channel = accept();
      const socket = net.connect(info.destPort, info.destIP);
      socket.on('error', () => channel.close());
      channel.on('error', () => socket.destroy());
      channel.pipe(socket).pipe(channel);
      channel.on('close', () => socket.destroy());
    });
  }, acceptKey);
}
