/**
 * An in-memory RemoteHost for the migration step: each purpose ("alembic heads", "run
 * migrate-command", ...) answers from a queue of scripted results, and every call is
 * recorded. A purpose with no reply left fails the test.
 */
import { RemoteCommandError } from '../../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../../src/remote/remote-host.js';
import type { ShellFragment } from '../../../src/remote/shell-quote.js';

export interface RecordedCall {
  purpose: string;
  command: string;
  options: ExecOptions | undefined;
}

export class ScriptedHost implements RemoteHost {
  readonly name = 'deploy@app1:22';
  readonly calls: RecordedCall[] = [];
  private readonly replies = new Map<string, Array<Partial<ExecResult>>>();

  /** Queues replies for a purpose, answered in order. */
  on(purpose: string, ...replies: Array<Partial<ExecResult>>): this {
    this.replies.set(purpose, [...(this.replies.get(purpose) ?? []), ...replies]);
    return this;
  }

  purposes(): string[] {
    return this.calls.map((call) => call.purpose);
  }

  async exec(purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult> {
    this.calls.push({ purpose, command: command.text, options });
    const reply = this.replies.get(purpose)?.shift();
    if (!reply) throw new Error(`unexpected command for '${purpose}': ${command.text}`);
    const result: ExecResult = { stdout: '', stderr: '', code: 0, ...reply };
    if (result.code !== 0 && !options?.allowFailure) {
      throw new RemoteCommandError(purpose, this.name, result.code, result.stderr);
    }
    return result;
  }

  async upload(): Promise<void> {
    throw new Error('the migration step uploads nothing');
  }

  async close(): Promise<void> {}
}
