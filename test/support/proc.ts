/**
 * Small process and waiting helpers shared by the test support modules: every child process
 * and every wait is bounded, and a timeout says what was being waited for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; 128 + signal number when the process was killed by a signal. */
  code: number;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Named in the timeout error, e.g. "exec on h1". */
  what?: string;
  /** Called with the whole stdout so far after each chunk, e.g. to signal the child at a given line. */
  onStdout?: (stdout: string, child: ChildProcess) => void;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

/**
 * Runs a program without a shell and collects its output. On timeout the whole process group
 * is killed (the program may have forked, as nsenter does) and the promise rejects.
 */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const what = opts.what ?? [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true, // own process group, so a timeout can kill forked children too
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      opts.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${what}: could not start ${file}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${what}: timed out after ${timeoutMs} ms\n${tailText(stdout + stderr, 20)}`));
        return;
      }
      resolve({ stdout, stderr, code: code ?? 128 + (SIGNAL_NUMBERS[signal ?? ''] ?? 0) });
    });
    child.stdin.on('error', () => {}); // a program that doesn't read its input must not crash us
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run, but a non-zero exit rejects with the program's stderr. */
export async function runChecked(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(file, args, opts);
  if (result.code !== 0) {
    const what = opts.what ?? [file, ...args].join(' ');
    throw new Error(`${what}: exit ${result.code}\n${tailText(result.stderr || result.stdout, 30)}`);
  }
  return result;
}

/**
 * Polls `check` until it returns a value other than undefined/false, or fails after timeoutMs
 * with "timed out after N ms waiting for <what>" plus whatever `explain` adds (log tails...).
 * A check that throws ends the wait at once (use it for "this can never succeed now").
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs: number; intervalMs?: number; explain?: () => Promise<string> | string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = '';
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) {
      try {
        lastError = opts.explain ? await opts.explain() : '';
      } catch (error) {
        lastError = `(could not collect details: ${String(error)})`;
      }
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${lastError ? `\n${lastError}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last `lines` lines of a text. */
export function tailText(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The last lines of a file, or a note saying it is missing; for error messages. */
export async function tailFile(path: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return `--- last ${lines} lines of ${path} ---\n${tailText(text, lines) || '(empty)'}`;
  } catch {
    return `--- ${path}: (missing) ---`;
  }
}

/** Whether `pid` is a live process: a zombie (killed, not yet reaped by its parent) is not. */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2, stat.lastIndexOf(') ') + 3) !== 'Z';
  } catch {
    return false;
  }
}
