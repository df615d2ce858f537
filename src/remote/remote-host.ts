import type { ShellFragment } from './shell-quote.js';

/** What a remote command returned. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Overrides the per-command timeout, in seconds. */
  timeoutSeconds?: number;
  /** Text written to the command's standard input. */
  stdin?: string;
  /** When true a non-zero exit is returned instead of thrown. */
  allowFailure?: boolean;
}

/**
 * One target host over one reused connection. The only way the rest of the code touches a
 * host, so every piece above it can be tested with a stub.
 */
export interface RemoteHost {
  /** Display name (`user@host:port`), used in logs and errors. */
  readonly name: string;
  /**
   * Runs a command built with `sh`. `purpose` says what it is for ("unpack release"); a
   * non-zero exit throws a RemoteCommandError naming the purpose, the host and stderr's tail.
   */
  exec(purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Sends `request` to a unix socket on the host through the connection itself (OpenSSH's
   * streamlocal channel, sshd's AllowStreamLocalForwarding) and returns everything it answers
   * until it closes. Absent on hosts that cannot (stubs); it rejects when sshd refuses.
   */
  socketRequest?(purpose: string, socketPath: string, request: string, timeoutSeconds: number): Promise<string>;
  /** Copies a local file to a remote path over SFTP. */
  upload(purpose: string, localPath: string, remotePath: string): Promise<void>;
  close(): Promise<void>;
}
