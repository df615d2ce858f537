/** A RemoteHost that runs commands on this machine with `sh -c`, for tests against real Alembic. */
import { spawn } from 'node:child_process';

import { RemoteCommandError } from '../../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../../src/remote/remote-host.js';
import type { ShellFragment } from '../../../src/remote/shell-quote.js';

export class LocalHost implements RemoteHost {
  readonly name = 'localhost';
  readonly commands: string[] = [];

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  exec(purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(command.text);
    return new Promise((resolve, reject) => {
      const child = spawn('sh', ['-c', command.text], { env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('error', reject);
      child.on('close', (code) => {
        const result = { stdout, stderr, code: code ?? 1 };
        if (result.code !== 0 && !options?.allowFailure) {
          reject(new RemoteCommandError(purpose, this.name, result.code, stderr.trim().split('\n').slice(-5).join('\n')));
        } else {
          resolve(result);
        }
      });
      child.stdin.end(options?.stdin ?? '');
    });
  }

  async upload(): Promise<void> {
    throw new Error('not needed by these tests');
  }

  async close(): Promise<void> {}
}
