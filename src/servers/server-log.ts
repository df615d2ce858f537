/**
 * The app server's own log, read when a host fails its reload or its gates: the last lines go to
 * the run's log and the job summary, so a worker's traceback is there without an SSH session.
 * Where it is: `server-log` (gunicorn's errorlog, uWSGI's logto), else the journal of `service`.
 */
import type { Settings } from '../config/settings.js';
import { errorMessage } from '../errors.js';
import { BecomeRemoteHost } from '../remote/become-remote-host.js';
import type { RemoteHost } from '../remote/remote-host.js';
import { sh, type ShellFragment } from '../remote/shell-quote.js';

export type ServerLogSource = { file: string } | { unit: string };

/** Lines read, and the longest line kept: a traceback's last frames and its error fit. */
export const SERVER_LOG_LINES = 30;
const LINE_LIMIT = 300;
const READ_TIMEOUT_SECONDS = 10;

export function serverLogSource(settings: Pick<Settings, 'serverLog' | 'service'>): ServerLogSource | undefined {
  if (settings.serverLog) return { file: settings.serverLog };
  if (settings.service) return { unit: settings.service };
  return undefined;
}

/** Where the lines come from, for the log and the summary. */
export function describeSource(source: ServerLogSource): string {
  return 'file' in source ? source.file : `journal of ${source.unit}`;
}

/** The command that prints the log's last lines (a missing file or journal says so on stderr). */
export function serverLogTailCommand(source: ServerLogSource, lines = SERVER_LOG_LINES): ShellFragment {
  if ('file' in source) return sh`tail -n ${String(lines)} -- ${source.file}`;
  return sh`journalctl --no-pager -o short-iso -n ${String(lines)} -u ${source.unit}`;
}

/**
 * The log's last lines on `host`, read as `become` when set (the log is the app user's). Never
 * throws: what could not be read is said in the text instead.
 */
export async function readServerLog(host: RemoteHost, source: ServerLogSource, become?: string): Promise<string> {
  const reader = become && !host.name.startsWith(`${become}@`) ? new BecomeRemoteHost(host, become) : host;
  try {
    const result = await reader.exec(`read the last lines of ${describeSource(source)}`, serverLogTailCommand(source), { timeoutSeconds: READ_TIMEOUT_SECONDS, allowFailure: true });
    const text = result.stdout.trim() || `(nothing read: ${result.stderr.trim() || `exit ${result.code}`})`;
    return text
      .split('\n')
      .map((line) => (line.length > LINE_LIMIT ? `${line.slice(0, LINE_LIMIT - 1)}…` : line))
      .join('\n');
  } catch (error) {
    return `(could not read it: ${errorMessage(error)})`;
  }
}
