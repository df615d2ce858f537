import { constants } from 'node:os';
import { quote, type ShellFragment } from './shell-quote.js';

/** Seconds between the host's TERM and KILL of a command that outlived its deadline. */
export const KILL_AFTER_SECONDS = 5;

/** `timeout`'s exit status when the deadline passed (124), or when TERM was not enough (128 + KILL). */
const TIMED_OUT_EXITS = new Set([124, 137]);

/**
 * The text sent over SSH for one command: the command under the host's own `timeout -k`, so
 * it cannot outlive its deadline even when the connection is gone (closing a channel without
 * a pty stops nothing), and under `sh` whatever the user's login shell is.
 *
 * sshd hands this text to the login shell, which may be fish or csh: their quoting differs
 * from sh (fish reads `\\` inside single quotes, csh refuses a newline in them). So the
 * command travels as base64, the one alphabet every shell reads literally between single
 * quotes, and sh decodes and runs it. `timeout` makes itself a process group leader and
 * signals the whole group, so children (alembic, psql) go too.
 */
export function remoteCommandLine(command: ShellFragment, deadlineSeconds: number): string {
  const payload = Buffer.from(command.text, 'utf8').toString('base64');
  const script = `eval "$(printf %s ${payload} | base64 -d)"`;
  return `timeout -k ${KILL_AFTER_SECONDS} ${seconds(deadlineSeconds)} sh -c ${quote(script)}`;
}

/** Whether an exit status means the host's `timeout` stopped the command (and not the command itself). */
export function stoppedByDeadline(code: number, elapsedSeconds: number, deadlineSeconds: number): boolean {
  return TIMED_OUT_EXITS.has(code) && elapsedSeconds >= deadlineSeconds;
}

/**
 * The exit status a shell would show: sshd reports a command killed by a signal (as `timeout`
 * kills itself with KILL after the grace period) by the signal's name, without a code.
 */
export function exitStatusOf(code: number | null | undefined, signal: string | null | undefined): number {
  if (typeof code === 'number') return code;
  const number = signal ? constants.signals[`SIG${signal.replace(/^SIG/, '')}` as NodeJS.Signals] : undefined;
  return number === undefined ? -1 : 128 + number;
}

/** `timeout` takes a decimal number of seconds; keep it short and never zero (0 disables it). */
function seconds(value: number): string {
  const rounded = Math.max(0.1, Math.round(value * 10) / 10);
  return String(rounded);
}

/** The last lines of a command's output, as errors quote it. */
export function tail(text: string): string {
  return text.trim().split('\n').slice(-STDERR_TAIL_LINES).join('\n');
}

const STDERR_TAIL_LINES = 12;
