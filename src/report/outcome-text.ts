import type { Mode } from '../config/settings.js';
import type { DeployOutcome, DeployStatus, HostReport } from './reporter.js';

/**
 * What a run's outcome says in words: the first line of the job summary, the `message` and
 * `failed-hosts` outputs. Pure: the summary's snapshots and the outputs read the same text.
 */

/** Names the host a failure happened on, and gives its report the error (an error it already has says more). */
export function blameHost(outcome: DeployOutcome, host: string, message: string): void {
  outcome.errorHost = host;
  const report = outcome.hosts.find((candidate) => candidate.host === host);
  if (report) report.error ??= message;
}

/** The hosts that failed, in the hosts input's order: those with an error of their own, then the one the run's error names. */
export function failedHosts(outcome: DeployOutcome): string[] {
  const failed = outcome.hosts.filter((host) => host.error !== undefined || host.status === 'failed').map((host) => host.host);
  if (outcome.errorHost && !failed.includes(outcome.errorHost)) failed.push(outcome.errorHost);
  return failed;
}

/** The outcomes that are a failure: only they have a cause. */
const FAILURES: ReadonlySet<DeployStatus> = new Set<DeployStatus>(['rolled-back', 'cancelled', 'failed']);

/** The first line of the run's error: what went wrong, without the output tail that may follow. */
export function cause(outcome: DeployOutcome): string | undefined {
  if (!FAILURES.has(outcome.status)) return undefined;
  return outcome.error?.split('\n').find((line) => line.trim())?.trim() ?? 'unknown error';
}

/** What follows the first line of the run's error: another host's error, the output tail of a failed check. */
export function causeDetails(outcome: DeployOutcome): string | undefined {
  if (cause(outcome) === undefined || !outcome.error) return undefined;
  const lines = outcome.error.split('\n');
  const first = lines.findIndex((line) => line.trim());
  return lines.slice(first + 1).join('\n').trim() || undefined;
}

/**
 * One sentence: what the hosts serve now. The cause of a failure is not in it (the summary
 * shows the cause above it; message() appends it).
 */
export function headline(outcome: DeployOutcome, mode: Mode = 'deploy'): string {
  const { release, previousRelease: previous } = outcome;
  const count = hostCount(outcome.hosts.length);
  const failed = failedHosts(outcome);
  const what = mode === 'rollback' ? `rollback${release ? ` to ${release}` : ''}` : `${mode}${release ? ` of ${release}` : ''}`;
  switch (outcome.status) {
    case 'deployed': {
      const was = previous ? ` (was ${previous})` : '';
      if (mode === 'rollback') return `rolled back to ${release} on ${count}${was}.`;
      if (failed.length === 0) return `deployed ${release} to ${count}${was}.`;
      return `deployed ${release} to ${outcome.hosts.length - failed.length} of ${count}${was}; ${failed.join(', ')} failed and went back to ${previous ?? 'the previous release'}.`;
    }
    case 'rolled-back':
      return `${what} failed${failed.length ? ` on ${failed.join(', ')}` : ''}; every host it reached is back on ${previous ?? 'the previous release'}.`;
    case 'cancelled':
      return `${what} was cancelled; ${servedBy(outcome.hosts)}.`;
    case 'planned':
      return `plan only, nothing changed: ${release} would replace ${previous ?? 'the current release'} on ${count}.`;
    case 'unlocked': {
      const removed = outcome.hosts.filter((host) => host.removedLock).length;
      return removed ? `removed the deploy lock on ${removed} of ${count}.` : `no deploy lock was held on the ${count}.`;
    }
    case 'failed': {
      const stranded = outcome.hosts.filter((host) => host.error?.startsWith('rollback failed')).map((host) => host.host);
      return `${what} failed${failed.length ? ` on ${failed.join(', ')}` : ''}${stranded.length ? `; NOT put back, check by hand: ${stranded.join(', ')}` : ''}.`;
    }
    case 'unchanged':
      return `${release} is already current and serving on ${count}: nothing was deployed.`;
    case 'migrated':
      return `migrations of ${release} ran; nothing was switched or reloaded.`;
  }
}

/** The `message` output: one line for a notification, the cause of a failure included. */
export function message(outcome: DeployOutcome, mode: Mode = 'deploy'): string {
  const why = cause(outcome);
  return `graceful-deploy: ${headline(outcome, mode)}${why ? ` ${why}` : ''}`;
}

/** The release a host serves after the run: the new one once deployed, unknown after a failure it was not put back from, else the one it had. */
export function servesNow(host: HostReport): string | undefined {
  if (host.status === 'deployed' || host.status === 'unchanged') return host.release;
  if (host.status === 'failed') return undefined;
  return host.status === 'rolled-back' ? (host.release ?? host.previousRelease) : host.previousRelease;
}

/** Which release each host serves now, grouped: "v3 on web1; v2 on web2, web3". */
export function servedBy(hosts: readonly HostReport[]): string {
  const groups = new Map<string, string[]>();
  for (const host of hosts) {
    const key = servesNow(host) ?? 'unknown (failed)';
    groups.set(key, [...(groups.get(key) ?? []), host.host]);
  }
  if (groups.size === 0) return 'no host was reached';
  return [...groups].map(([release, names]) => `${release} on ${names.join(', ')}`).join('; ');
}

/** Seconds as a person reads them: "8.4 s", "1 min 12 s". */
export function durationText(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

function hostCount(count: number): string {
  return `${count} host${count === 1 ? '' : 's'}`;
}
