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
  status: 'pending' | 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'unlocked';
  release?: string;
  previousRelease?: string;
  oldMasterPid?: number;
  newMasterPid?: number;
  oldWorkers?: number[];
  newWorkers?: number[];
  secondsToReady?: number;
  health?: string;
  error?: string;
  /** mode: unlock — whose lock was removed from this host. */
  removedLock?: string;
  /** When each phase of this host started and how long it took (see timeline.ts). */
  timeline?: PhaseSpan[];
}

export type DeployStatus = 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'unlocked' | 'cancelled';

export interface DeployOutcome {
  status: DeployStatus;
  release: string;
  previousRelease?: string;
  strategy: string;
  hosts: HostReport[];
  /** What the migration step did, when there was one. */
  migration?: MigrationOutcome;
  /** Set when status is not deployed/planned. */
  error?: string;
}

export interface MigrationOutcome extends MigrationResult {
  host: string;
  /** The lint refused the migrations: nothing was migrated. */
  refused?: boolean;
  /** The step failed (refused, several heads, the command failed): no host reloaded. */
  failed?: boolean;
}
