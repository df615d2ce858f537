import { DeployError, errorMessage } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { sh, type ShellFragment } from '../../remote/shell-quote.js';

const ANSWER_TIMEOUT_SECONDS = 10;

/**
 * Python on the LB host as a socat stand-in: connect to the unix socket, send argv[2], print
 * everything until the socket closes. Constant program text; the path and the command arrive as
 * quoted arguments.
 */
const PYTHON_CLIENT = [
  'import socket,sys',
  's=socket.socket(socket.AF_UNIX)',
  's.settimeout(10)',
  's.connect(sys.argv[1])',
  's.sendall(sys.argv[2].encode())',
  'b=b""',
  'while True:',
  '  c=s.recv(65536)',
  '  if not c: break',
  '  b+=c',
  'sys.stdout.write(b.decode("utf-8","replace"))',
].join('\n');

/** The command that asks the admin socket through python3 on the LB host (the fallback). */
export function pythonSocketCommand(socketPath: string, command: string): ShellFragment {
  return sh`python3 -c ${PYTHON_CLIENT} ${socketPath} ${`${command}\n`}`;
}

/** The load balancer could not be asked or refused a command; names the LB host. */
export class BalancerError extends DeployError {}

/**
 * HAProxy's runtime API on its admin socket, reached from the runner through the SSH
 * connection to the LB host: a streamlocal channel when sshd allows it, else python3 there.
 */
export class AdminSocket {
  private useStreamLocal: boolean;

  constructor(
    readonly remote: RemoteHost,
    readonly socketPath: string,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.useStreamLocal = typeof remote.socketRequest === 'function';
  }

  /** Sends one command; HAProxy answers and closes (non-interactive mode). */
  async send(command: string): Promise<string> {
    if (this.useStreamLocal && this.remote.socketRequest) {
      try {
        return await this.remote.socketRequest(`HAProxy: ${command}`, this.socketPath, `${command}\n`, ANSWER_TIMEOUT_SECONDS);
      } catch (error) {
        // sshd refuses the channel with AllowStreamLocalForwarding no (or an old sshd): go on with python3.
        if (!/open failed|administratively prohibited|not supported|refused/i.test(errorMessage(error))) throw error;
        this.useStreamLocal = false;
        this.log(`the SSH server refused a streamlocal channel to ${this.socketPath} (${errorMessage(error)}); asking HAProxy through python3 on the host instead`);
      }
    }
    const result = await this.remote.exec(`HAProxy: ${command}`, pythonSocketCommand(this.socketPath, command), { timeoutSeconds: ANSWER_TIMEOUT_SECONDS * 2 });
    return result.stdout;
  }

  /** A command that answers nothing on success (`set server ...`); any text back is HAProxy's refusal. */
  async expectSilent(command: string): Promise<void> {
    const answer = (await this.send(command)).trim();
    if (answer) throw new BalancerError(`HAProxy refused '${command}': ${answer}`, this.remote.name);
  }
}
