import type { Duplex } from 'node:stream';
import type { Channel } from 'ssh2';
import type { HostTarget, JumpHostSettings, SshSettings } from '../config/settings.js';
import { HostUnreachableError, JumpHostError, errorMessage } from '../errors.js';
import { parseKnownHosts } from './known-hosts.js';
import { hopConfig, type HopSpec, type SshCredentials } from './ssh-config.js';
import { SshLink } from './ssh-link.js';

/**
 * Opens one SSH connection to `target`, its host key verified, through the jump host when one
 * is configured. Everything that reaches a machine over SSH (the deploy hosts, a balancer's
 * host) opens its connections with the run's one connector, so they share one bastion.
 */
export type SshConnector = (target: HostTarget) => Promise<SshLink>;

export function sshConnector(settings: SshSettings): SshConnector {
  const knownHosts = settings.knownHosts === undefined ? undefined : parseKnownHosts(settings.knownHosts);
  const hop = (target: HostTarget, credentials: SshCredentials, role: HopSpec['role'], sock?: Duplex) =>
    openHop({ target, credentials, role, sock, knownHosts, connectTimeoutSeconds: settings.connectTimeoutSeconds });
  const hostCredentials: SshCredentials = { privateKey: settings.privateKey, passphrase: settings.passphrase, agent: settings.agent };
  const jump = settings.jump;
  if (!jump) return (target) => hop(target, hostCredentials, 'host');
  const route = new JumpRoute(jump, () => hop(jump.target, jump, 'jump host'), settings.connectTimeoutSeconds);
  return (target) => route.open(target, (sock) => hop(target, hostCredentials, 'host', sock));
}

/** Connects one hop; a refused host key wins over the connection error it causes. */
async function openHop(spec: HopSpec): Promise<SshLink> {
  const { config, refusal } = hopConfig(spec);
  try {
    return await SshLink.open(config);
  } catch (error) {
    const refused = refusal();
    if (refused) throw refused;
    if (spec.role === 'jump host') throw new JumpHostError(`cannot connect to the jump host over SSH: ${errorMessage(error)}`, spec.target.label);
    throw new HostUnreachableError(`cannot connect over SSH${spec.sock ? ' through the jump host' : ''}: ${errorMessage(error)}`, spec.target.label);
  }
}

/**
 * The bastion connection, shared by every connection through it: opened on first use, opened
 * again (host key verified again) when it was lost, so a host's reconnect goes through a fresh
 * bastion; closed once no connection through it is left, so node can exit.
 */
class JumpRoute {
  private link: SshLink | undefined;
  private opening: Promise<SshLink> | undefined;
  private readonly users = new Set<SshLink>();
  private pending = 0;

  constructor(
    private readonly jump: JumpHostSettings,
    private readonly openBastion: () => Promise<SshLink>,
    private readonly timeoutSeconds: number,
  ) {}

  async open(target: HostTarget, openHost: (sock: Duplex) => Promise<SshLink>): Promise<SshLink> {
    this.pending += 1;
    let channel: Channel | undefined;
    try {
      channel = await this.forward(await this.connected(), target);
      const link = await openHost(channel);
      this.users.add(link);
      link.onClose(() => {
        this.users.delete(link);
        this.closeIfIdle();
      });
      return link;
    } catch (error) {
      channel?.destroy();
      throw error;
    } finally {
      this.pending -= 1;
      this.closeIfIdle();
    }
  }

  private async connected(): Promise<SshLink> {
    if (this.link && this.link.lost === undefined) return this.link;
    // Hosts reconnecting together after the bastion dropped wait for one new bastion connection.
    this.opening ??= this.reopen().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async reopen(): Promise<SshLink> {
    this.link?.close();
    this.link = undefined;
    this.link = await this.openBastion();
    return this.link;
  }

  /**
   * A direct-tcpip channel from the bastion to the host's sshd. OpenSSH confirms it only once its
   * TCP connection is up, so a host that drops packets would keep us waiting for the kernel's
   * connect timeout (minutes): connect-timeout bounds it.
   */
  private forward(bastion: SshLink, target: HostTarget): Promise<Channel> {
    const where = `${target.host}:${target.port}`;
    const via = `the jump host ${this.jump.target.label}`;
    return new Promise((resolve, reject) => {
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        reject(new JumpHostError(`${via} could not reach ${where} within ${this.timeoutSeconds}s (connect-timeout)`, target.label));
      }, this.timeoutSeconds * 1000);
      bastion.ssh.forwardOut('127.0.0.1', 0, target.host, target.port).then(
        (channel) => {
          clearTimeout(timer);
          if (expired) channel.destroy();
          else resolve(channel);
        },
        (error: unknown) => {
          clearTimeout(timer);
          const why = bastion.lost ? `the connection to it was lost (${bastion.lost})` : errorMessage(error);
          reject(new JumpHostError(`${via} could not open a connection to ${where}: ${why}`, target.label));
        },
      );
    });
  }

  private closeIfIdle(): void {
    if (this.users.size > 0 || this.pending > 0 || this.opening) return;
    this.link?.close();
    this.link = undefined;
  }
}
