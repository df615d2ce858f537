import { copyFile } from 'node:fs/promises';
import { RemoteCommandError } from '../../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../../src/remote/remote-host.js';
import type { ShellFragment } from '../../../src/remote/shell-quote.js';
import { run } from '../../support/proc.js';

/**
 * A RemoteHost that runs commands in a local /bin/sh: the deploy story's file operations
 * happen for real on a scratch directory, and the migration step runs real Alembic. `answer`
 * may answer a purpose itself (the readiness probe, which needs a server per host).
 */
export class LocalHost implements RemoteHost {
  readonly commands: { purpose: string; command: string }[] = [];

  constructor(
    readonly name = 'localhost',
    private readonly answer: (purpose: string, command: string) => ExecResult | undefined = () => undefined,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  async exec(purpose: string, command: ShellFragment, options: ExecOptions = {}): Promise<ExecResult> {
    this.commands.push({ purpose, command: command.text });
    const result = this.answer(purpose, command.text) ?? (await runLocally(command.text, options.stdin, this.env));
    if (result.code !== 0 && !options.allowFailure) throw new RemoteCommandError(purpose, this.name, result.code, result.stderr.trim());
    return result;
  }

  async upload(_purpose: string, localPath: string, remotePath: string): Promise<void> {
    await copyFile(localPath, remotePath);
  }

  async close(): Promise<void> {}
}

/** Runs through the shared test `run` helper, which survives a command that never reads its stdin. */
function runLocally(command: string, stdin: string | undefined, env: NodeJS.ProcessEnv): Promise<ExecResult> {
  return run('/bin/sh', ['-c', command], { input: stdin, env, timeoutMs: 120_000 });
}
