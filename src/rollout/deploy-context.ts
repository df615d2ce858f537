import type { Balancer } from '../balancer/balancer.js';
import type { Settings } from '../config/settings.js';
import { DeployError } from '../errors.js';
import type { MigrationResult } from '../migrate/index.js';
import type { Layout } from '../release/layout.js';
import type { ReleaseState } from '../release/release-state.js';
import type { HealthReading } from '../health/readiness-gate.js';
import type { RunIdentity } from '../release/run-identity.js';
import type { RemoteHost } from '../remote/remote-host.js';
import type { RemoteHostFactory } from '../remote/ssh-remote-host.js';
import type { DeployOutcome, HostReport, Reporter } from '../report/reporter.js';
import type { NextPhase, Phase, Timeline } from '../report/timeline.js';
import type { ServerDriver, ServerProcess } from '../servers/server-driver.js';

/** Everything the story needs from outside, so it can run against stubs. */
export interface DeployDependencies {
  connect: RemoteHostFactory;
  server: ServerDriver;
  reporter: Reporter;
  /** The migration step (main.ts binds it to runMigrationStep); runs once, on one host, before any reload. */
  migrate?: (host: RemoteHost, python: string, releaseDir: string, log: (line: string) => void) => Promise<MigrationResult>;
  /** The load balancer in front of the hosts (lb); none when undefined. */
  balancer?: Balancer;
  /** Who runs this deploy, for locks and audit lines; default: from process.env. */
  identity?: RunIdentity;
  /**
   * The runner's cancellation (SIGINT/SIGTERM). Nothing new starts once it aborts; the hosts in
   * flight are finished to one consistent release (see rollOut), hosts already done stay done.
   */
  signal?: AbortSignal;
  /** This run's lock token (main.ts saves it for the post step); default: a random one. */
  token?: string;
  /**
   * Told each host's phase as it changes (`locking` before the lock is asked for, `locked`,
   * `reloading`, `done`), for the post step.
   */
  progress?: (host: string, phase: 'locking' | 'locked' | 'reloading' | 'done') => void;
  /** Where each host's phases are timed, for the `hosts` output and the summary's chart; deploy() starts one when unset. */
  timeline?: Timeline;
}

/** Times `work` as `phase` of `host` on the run's timeline. */
export function timed<T>(deps: DeployDependencies, host: string, phase: Phase, work: (next: NextPhase) => Promise<T>): Promise<T> {
  return deps.timeline ? deps.timeline.track(host, phase, work) : work(() => undefined);
}

/** One host during a deploy. */
export interface HostSession {
  remote: RemoteHost;
  report: HostReport;
  state: ReleaseState;
  server: ServerProcess;
  /** The release to put in place on this host. */
  target: string;
  /** What `current` pointed to before this run. */
  leaving: string;
  /**
   * What `previous` names once this host is on `target` (where the next `mode: rollback` goes):
   * after a deploy the release it left; after a rollback the release before the target on disk
   * (so a second rollback goes further back instead of forward again); null = the link is removed.
   * undefined = left as it is (the target was already current: reloaded in place).
   */
  previousAfter: string | null | undefined;
  /** `target` is already current here (if-current: redeploy reloads it in place: nothing staged). */
  inPlace: boolean;
  /** The readiness response read while inspecting (not for a deploy's hosts, which read it while staging). */
  reading?: HealthReading;
  /** Whether the response of `leaving` names its version (decides expect-version: auto). */
  versioned: boolean;
}

/** What every phase of one run shares. */
export interface RunContext {
  settings: Settings;
  deps: DeployDependencies;
  layout: Layout;
  /** This run's token: names its lock, upload and incoming directories. */
  token: string;
  outcome: DeployOutcome;
}

/** A failed deploy, carrying the outcome for the outputs. */
export class DeployFailed extends DeployError {
  constructor(readonly outcome: DeployOutcome) {
    super(outcome.error ?? outcome.status);
  }
}

/**
 * What a cancelled run left: each host and the release it serves, for the error and the log.
 * A host is on its new release only when its report says deployed.
 */
export function cancelledMessage(outcome: DeployOutcome): string {
  const hosts = outcome.hosts.map((host) => {
    const serves = host.status === 'deployed' ? host.release : host.previousRelease;
    const how = { deployed: 'deployed', 'rolled-back': 'put back', failed: 'FAILED', pending: 'not reached', planned: 'not reached', unlocked: '', unchanged: 'unchanged', migrated: 'not reloaded' }[host.status];
    return `${host.host} serves ${serves ?? '?'} (${how})`;
  });
  return `cancelled by the runner; nothing new was started${hosts.length ? `: ${hosts.join(', ')}` : ''}.`;
}

export function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}
