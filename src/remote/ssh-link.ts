import { NodeSSH, type Config } from 'node-ssh';
import { DeployError, HostKeyError, HostUnreachableError, errorMessage } from '../errors.js';

/** Unanswered keepalives after which a connection counts as dead (ssh2's keepaliveCountMax). */
const KEEPALIVE_COUNT_MAX = 3;

/**
 * Keepalive settings that declare a silent connection dead after about `connectTimeoutSeconds`:
 * a host that cannot answer within the time we give it to connect is as unreachable as one
 * that does not accept the connection. ssh2 gives up after KEEPALIVE_COUNT_MAX + 1 intervals.
 */
export function keepaliveOf(connectTimeoutSeconds: number): Pick<Config, 'keepaliveInterval' | 'keepaliveCountMax'> {
  return {
    keepaliveInterval: Math.max(1000, Math.round((connectTimeoutSeconds * 1000) / (KEEPALIVE_COUNT_MAX + 1))),
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
  };
}

/**
 * One SSH connection and, once it ends, why. node-ssh listens for ssh2's `error` only while
 * connecting; after that an ECONNRESET or keepalive timeout would be an `error` event with no
 * listener, which kills node. The link listens for the connection's whole life instead and
 * records the loss, so the command that was running fails with a typed error and the next one
 * can reconnect.
 */
export class SshLink {
  /** Why the connection ended (`Keepalive timeout`, `read ECONNRESET`); undefined while open. */
  lost: string | undefined;
  private readonly closeListeners: (() => void)[] = [];

  private constructor(readonly ssh: NodeSSH) {}

  /** Connects; rejects with the ssh2 error (the caller names the host). */
  static async open(config: Config): Promise<SshLink> {
    const ssh = new NodeSSH();
    const connecting = ssh.connect(config);
    // node-ssh creates the ssh2 Client synchronously, before connect()'s first await (the key
    // is passed as text, never as a path to read), so the listeners below miss no event.
    const client = ssh.connection;
    if (!client) {
      // Never leave the connect attempt floating: its rejection would be unhandled.
      connecting.catch(() => undefined);
      ssh.dispose();
      throw new Error('node-ssh did not create its ssh2 client synchronously; the SSH error listener could not be attached');
    }
    const link = new SshLink(ssh);
    client.on('error', (error: Error) => {
      link.lost ??= error.message;
    });
    client.on('close', () => {
      link.lost ??= 'the connection was closed';
    });
    // TCP_NODELAY, as OpenSSH sets it: with Nagle on, every command waits for the delayed ACK of
    // its request (measured on the sandbox: 88 ms per `true` with it, 3 ms without). A link
    // carried inside a bastion's channel has no socket of its own; ssh2 skips it there.
    client.setNoDelay(true);
    try {
      await connecting;
    } catch (error) {
      ssh.dispose();
      throw error;
    }
    return link;
  }

  close(): void {
    this.lost ??= 'closed by this run';
    this.ssh.dispose();
    this.closeListeners.splice(0).forEach((listener) => listener());
  }

  /** Calls `listener` once, when this run closes the link (not when the connection is lost). */
  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }
}

export interface ReconnectPolicy {
  /** Waits before each attempt, in milliseconds; their count is the number of attempts. */
  delaysMs: readonly number[];
  sleep?: (milliseconds: number) => Promise<void>;
}

/** Three attempts, 1 s, 3 s and 9 s after the loss: a restarting sshd or a short network blip is ridden out. */
export const RECONNECT_POLICY: ReconnectPolicy = { delaysMs: [1000, 3000, 9000] };

/**
 * Opens the connection again with bounded backoff. A host key that no longer matches is not
 * retried: that is a refusal, not an outage. When every attempt fails, the error names the
 * host, why the old connection ended and why the last attempt failed.
 */
export async function reconnect<T>(host: string, why: string, open: () => Promise<T>, policy: ReconnectPolicy = RECONNECT_POLICY): Promise<T> {
  const sleep = policy.sleep ?? ((milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds)));
  let last = 'no attempt was made';
  for (const delay of policy.delaysMs) {
    await sleep(delay);
    try {
      return await open();
    } catch (error) {
      if (error instanceof HostKeyError) throw error;
      last = error instanceof DeployError ? error.message.replace(`[${host}] `, '') : errorMessage(error);
    }
  }
  return Promise.reject(
    new HostUnreachableError(`the SSH connection was lost (${why}) and ${policy.delaysMs.length} attempts to reconnect failed (last: ${last})`, host),
  );
}
