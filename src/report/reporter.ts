import type { MigrationResult } from '../migrate/index.js';
import type { PhaseSpan } from './timeline.js';

/** How the deploy story reports progress: core.group/core.info in the action, a list in tests. */
export interface Reporter {
  /** Runs one phase (of one host, or of all) inside a collapsible log group. */
  group<T>(title: string, body: () => Promise<T>): Promise<T>;
  /** One log line about a host; prefixed with its name. */
  log(host: string, line: string): void;
  /** A warning worth an annotation. */
  warn(line: string): void;
}

/** What happened on one host, for outputs and the job summary. */
export interface HostReport {
  host: string;
  status: 'pending' | 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'unlocked' | 'unchanged' | 'migrated';
  release?: string;
  previousRelease?: string;
  /** What the host's `previous` link names after this run: where the next `mode: rollback` goes (none when absent). */
  rollbackTarget?: string;
  oldMasterPid?: number;
  newMasterPid?: number;
  oldWorkers?: number[];
  newWorkers?: number[];
  secondsToReady?: number;
  health?: string;
  error?: string;
  /** When the host failed: the last lines of the app server's log (server-log, or the service's journal), and where they come from. */
  serverLog?: { source: string; lines: string };
  /** Position of the host's batch in the rollout plan (0 is the canary when there is one). */
  batch?: number;
  /** The host is in the canary batch. */
  canary?: boolean;
  /** mode: unlock — whose lock was removed from this host. */
  removedLock?: string;
  /** What the load balancer (lb) saw of this host's server. */
  balancer?: {
    server: string;
    /** Seconds the server was out of rotation (drained), when it was. */
    drainedSeconds?: number;
    /** Sessions + queued requests on the server when it was drained. */
    sessionsAtDrain?: number;
    /** 5xx answers, broken answers and failed connections HAProxy counted on the server from drain to UP. */
    errorsDuringReload?: number;
    /** The traffic gate's verdict over its window. */
    traffic?: string;
    /** Set when this run drained the server and could not set it ready again: why (it may still be drained). */
    leftDrained?: string;
  };
  /** When each phase of this host started and how long it took (see timeline.ts). */
  timeline?: PhaseSpan[];
}

/** `unchanged`: the release was already current and serving everywhere (if-current: skip); `migrated`: mode: migrate ran its step. */
export type DeployStatus = 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'unlocked' | 'cancelled' | 'unchanged' | 'migrated';

export interface DeployOutcome {
  status: DeployStatus;
  release: string;
  previousRelease?: string;
  /** The first host's rollbackTarget after the run. */
  rollbackTarget?: string;
  strategy: string;
  hosts: HostReport[];
  /** What the migration step did, when there was one. */
  migration?: MigrationOutcome;
  /** Set when status is not deployed/planned, and for hosts put back alone within max-failed-hosts. */
  error?: string;
  /** The host the error is about, when it names one (a refused host key, a release that cannot load there). */
  errorHost?: string;
  /** mode: plan — the rollout plan, one line per batch (see describePlan). */
  plan?: string[];
}

export interface MigrationOutcome extends MigrationResult {
  host: string;
  /** The lint refused the migrations: nothing was migrated. */
  refused?: boolean;
  /** The step failed (refused, several heads, the command failed): no host reloaded. */
  failed?: boolean;
}
