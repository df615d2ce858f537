/**
 * Connections through a jump host, against real SSH servers on loopback (ssh2's): a bastion that
 * forwards direct-tcpip channels and accepts only its own key, and two hosts behind it that
 * accept only the hosts' key. One bastion connection carries every host, is verified like a
 * host, is closed when no host needs it, and is opened again when it drops.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HostTarget, SshSettings } from '../../src/config/settings.js';
import { HostKeyError, JumpHostError } from '../../src/errors.js';
import type { RemoteHost } from '../../src/remote/remote-host.js';
import { raw } from '../../src/remote/shell-quote.js';
import { sshConnector } from '../../src/remote/ssh-connector.js';
import { sshRemoteHostFactory } from '../../src/remote/ssh-remote-host.js';
import { execServer, jumpServer, testKeyPair, type TestSshServer } from './support/ssh-servers.js';

const target = (port: number, user = 'deploy'): HostTarget => ({ user, host: '127.0.0.1', port, label: `${user}@127.0.0.1:${port}` });
const until = async (condition: () => boolean) => {
  for (const started = Date.now(); !condition(); ) {
    if (Date.now() - started > 5000) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('hosts behind a jump host', () => {
  const hostKey = testKeyPair();
  const jumpKey = testKeyPair();
  const refuse = { forwards: false };
  let bastion: TestSshServer;
  let hosts: TestSshServer[];
  let opened: RemoteHost[] = [];

  const settings = (overrides: { knownHosts?: string; jumpPort?: number } = {}): SshSettings => ({
    privateKey: hostKey.private,
    knownHosts: overrides.knownHosts ?? [bastion, ...hosts].map((server) => server.knownHostsLine).join('\n'),
    connectTimeoutSeconds: 2,
    commandTimeoutSeconds: 20,
    jump: { target: target(overrides.jumpPort ?? bastion.port, 'jump'), privateKey: jumpKey.private },
  });
  const connect = async (ssh: SshSettings, port: number) => {
    const host = await sshRemoteHostFactory(ssh)(target(port));
    opened.push(host);
    return host;
  };

  beforeAll(async () => {
    bastion = await jumpServer(jumpKey.public, refuse);
    hosts = await Promise.all([execServer(), execServer()]);
  });
  afterEach(async () => {
    await Promise.all(opened.map((host) => host.close()));
    opened = [];
    refuse.forwards = false;
    await until(() => bastion.stats.open.size === 0);
  });
  afterAll(() => [bastion, ...hosts].forEach((server) => server?.close()));

  it('reaches every host through one bastion connection, and closes it with the last host', async () => {
    const before = { connections: bastion.stats.connections, forwards: bastion.stats.forwards };
    const ssh = settings();
    const factory = sshRemoteHostFactory(ssh, undefined, sshConnector(ssh));
    const [one, two] = [await factory(target(hosts[0].port)), await factory(target(hosts[1].port))];
    opened.push(one, two);
    expect((await one.exec('say one', raw('echo one'))).stdout.trim()).toBe('one');
    expect((await two.exec('say two', raw('echo two'))).stdout.trim()).toBe('two');
    expect(bastion.stats.connections - before.connections).toBe(1);
    expect(bastion.stats.forwards - before.forwards).toBe(2);
    // Each host accepted the hosts' key; the bastion only its own (the servers check).
    await one.close();
    expect(bastion.stats.open.size).toBe(1);
    await two.close();
    await until(() => bastion.stats.open.size === 0);
  });

  it('refuses a bastion whose key is not the pinned one, before reaching any host', async () => {
    const forwards = bastion.stats.forwards;
    const impostor = testKeyPair().public.split(' ');
    const knownHosts = [`[127.0.0.1]:${bastion.port} ${impostor[0]} ${impostor[1]}`, ...hosts.map((server) => server.knownHostsLine)].join('\n');
    const error = await connect(settings({ knownHosts }), hosts[0].port).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(HostKeyError);
    expect(String(error)).toContain(`[jump@127.0.0.1:${bastion.port}] refusing to connect to the jump host: the host key offered (ssh-ed25519 SHA256:`);
    expect(String(error)).toContain('does not match the key pinned in known-hosts');
    expect(bastion.stats.forwards).toBe(forwards);
  });

  it('checks each host key behind the bastion under the host\u2019s own name', async () => {
    const knownHosts = [bastion.knownHostsLine, hosts[1].knownHostsLine].join('\n');
    const error = await connect(settings({ knownHosts }), hosts[0].port).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(HostKeyError);
    expect(String(error)).toMatch(new RegExp(`^HostKeyError: \\[deploy@127.0.0.1:${hosts[0].port}\\] refusing to connect: the host key offered .* is not in known-hosts`));
  });

  it('names the bastion when it refuses to forward', async () => {
    refuse.forwards = true;
    const error = await connect(settings(), hosts[0].port).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(JumpHostError);
    expect(String(error)).toContain(`[deploy@127.0.0.1:${hosts[0].port}] the jump host jump@127.0.0.1:${bastion.port} could not open a connection to 127.0.0.1:${hosts[0].port}`);
  });

  it('names the bastion when it cannot be reached', async () => {
    const closed = await jumpServer(jumpKey.public);
    closed.close();
    const error = await connect(settings({ jumpPort: closed.port }), hosts[0].port).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(JumpHostError);
    expect(String(error)).toContain(`[jump@127.0.0.1:${closed.port}] cannot connect to the jump host over SSH: connect ECONNREFUSED`);
  });

  it('reconnects a host through a new bastion connection when the bastion dropped', async () => {
    const host = await connect(settings(), hosts[0].port);
    expect((await host.exec('say hello', raw('echo hello'))).stdout.trim()).toBe('hello');
    const connections = bastion.stats.connections;
    for (const client of bastion.stats.open) client.end();
    await until(() => bastion.stats.open.size === 0);
    expect((await host.exec('say again', raw('echo again'))).stdout.trim()).toBe('again');
    expect(bastion.stats.connections).toBe(connections + 1);
  }, 15_000);
});
