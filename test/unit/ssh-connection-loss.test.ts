/**
 * The SSH layer against a real SSH server (ssh2's, running commands with the local /bin/sh)
 * behind a TCP relay that can go silent, as a dropped network does: no RST, no FIN, nothing.
 * Without a permanent 'error' listener the keepalive timeout kills the test process.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostUnreachableError } from '../../src/errors.js';
import type { RemoteHost } from '../../src/remote/remote-host.js';
import { raw } from '../../src/remote/shell-quote.js';
import { sshRemoteHostFactory } from '../../src/remote/ssh-remote-host.js';
import { execServer, testKeyPair, type TestSshServer } from './support/ssh-servers.js';

const MARKER = `sleep 29.${process.pid}`;

/** A TCP relay to `port` that forwards nothing while `silent` is set, on old and new connections alike. */
function relay(port: number) {
  const sockets = new Set<net.Socket>();
  const state = { silent: false };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(port, '127.0.0.1');
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(from);
      from.on('data', (chunk) => state.silent || to.write(chunk));
      from.on('error', () => undefined);
      from.on('close', () => to.destroy());
    }
  });
  return { server, state, sockets };
}

describe('an SSH connection that goes silent', () => {
  const clientKey = testKeyPair();
  let sshd: TestSshServer;
  let link: ReturnType<typeof relay>;
  let host: RemoteHost;

  beforeAll(async () => {
    sshd = await execServer();
    link = relay(sshd.port);
    await new Promise<void>((resolve) => link.server.listen(0, '127.0.0.1', resolve));
    const port = (link.server.address() as net.AddressInfo).port;
    const pinned = sshd.knownHostsLine.replace(`:${sshd.port} `, `:${port} `);
    const connect = sshRemoteHostFactory({ privateKey: clientKey.private, knownHosts: pinned, connectTimeoutSeconds: 2, commandTimeoutSeconds: 20 });
    host = await connect({ user: 'deploy', host: '127.0.0.1', port, label: 'deploy@local' });
  });
  afterAll(async () => {
    await host?.close();
    for (const socket of link?.sockets ?? []) socket.destroy();
    link?.server.close();
    sshd?.close();
    spawnSync('pkill', ['-f', MARKER]);
  });

  it('fails the running command with HostUnreachableError once keepalive gives up, long before its deadline', async () => {
    expect((await host.exec('say hello', raw('echo hello'))).stdout.trim()).toBe('hello');
    const started = Date.now();
    const running = host.exec('wait a while', raw(MARKER), { timeoutSeconds: 20 });
    setTimeout(() => (link.state.silent = true), 300);
    const error = await running.then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(HostUnreachableError);
    expect(String(error)).toContain('[deploy@local] lost the SSH connection during wait a while (Keepalive timeout)');
    // connect-timeout 2 s: keepalive every second, dead after 4 unanswered; the deadline was 20 s.
    expect((Date.now() - started) / 1000).toBeLessThan(8);
  }, 15_000);

  it('opens the connection again, host key checked, for the next command', async () => {
    link.state.silent = false;
    expect((await host.exec('say hello again', raw('echo again'))).stdout.trim()).toBe('again');
  }, 15_000);
});
