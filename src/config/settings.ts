import type { MigrationSettings } from '../migrate/migration-settings.js';
import type { BatchSize } from '../rollout/rollout-plan.js';

/** The typed, validated form of every input. Built once by parseSettings before anything connects. */

export type ServerKind = 'gunicorn' | 'uwsgi';
/** `auto`: usr2 where it is safe, else rolling, decided per host (servers/gunicorn/strategy-fit.ts). */
export type GunicornStrategy = 'auto' | 'usr2' | 'rolling' | 'hup';
export type UwsgiStrategy = 'chain' | 'reload';
export type Mode = 'deploy' | 'rollback' | 'migrate' | 'plan' | 'unlock';
/** What a deploy or rollback does on hosts where its release is already current (`if-current`). */
export type IfCurrent = 'skip' | 'redeploy' | 'fail';
export type ExpectVersion = 'auto' | 'always' | 'never';
export type DrainMode = 'auto' | 'always' | 'never';

/** One SSH target. */
export interface HostTarget {
  user: string;
  host: string;
  port: number;
  /** `user@host:port`, for logs. */
  label: string;
}

export interface SshSettings {
  privateKey?: string;
  passphrase?: string;
  /** known_hosts text; undefined only when the user turned checking off by name. */
  knownHosts?: string;
  /** Path of an ssh-agent socket, used when no key is given. */
  agent?: string;
  connectTimeoutSeconds: number;
  commandTimeoutSeconds: number;
  /** The bastion every connection goes through; undefined = connect to each host directly. */
  jump?: JumpHostSettings;
}

/** A jump host (bastion): pinned in known-hosts like every host, with the credentials it accepts. */
export interface JumpHostSettings {
  target: HostTarget;
  /** jump-ssh-key when given; otherwise the hosts' own key, passphrase or agent. */
  privateKey?: string;
  passphrase?: string;
  agent?: string;
}

export interface HealthSettings {
  /** health-url: http://, https:// or http+unix://<socket path, percent-encoded>/<path>. */
  url: string;
  /** The unix socket of an http+unix health-url, decoded (`/run/gunicorn.sock`). */
  socket?: string;
  /** health-host: the Host header the probe sends (an app that checks it, as Django's ALLOWED_HOSTS does). */
  host?: string;
  timeoutSeconds: number;
  intervalSeconds: number;
  successes: number;
  expectVersion: ExpectVersion;
}

/** How hosts move: preparation in parallel, then a canary, then batches (see rollout/rollout-plan.ts). */
export interface RolloutSettings {
  /** Hosts connected, inspected, staged and checked at once. */
  maxParallel: number;
  /** The first hosts (in the hosts input's order) deployed alone first; 0 = none. */
  canary: number;
  /** Seconds the canary must keep passing readiness probes before the next batch. */
  canaryWaitSeconds: number;
  batchSize: BatchSize;
  /** Seconds between batches. */
  batchWaitSeconds: number;
  /** Hosts outside the canary that may fail (each put back alone) before the whole rollout goes back. */
  maxFailedHosts: number;
}

/** The load balancer in front of the hosts (lb: haproxy). */
export interface BalancerSettings {
  kind: 'haproxy';
  /** The SSH host that runs HAProxy, pinned in known-hosts like every host. */
  host: HostTarget;
  /** HAProxy's admin socket on that host (`stats socket ... level admin`). */
  socket: string;
  backend: string;
  /** lb-servers: host (label, address or address:port) → server name; undefined = match by address. */
  servers?: Map<string, string>;
  drain: DrainMode;
  drainTimeoutSeconds: number;
  /** Traffic gate: extra error rate (0..1) and response-time factor the new release may show, over windowSeconds. */
  max5xxRate: number;
  latencyFactor: number;
  windowSeconds: number;
  /**
   * lb-canary-weight: the share (1..99, percent of its configured weight) the canary's server
   * gets while the traffic gate watches it; full weight once the gate passes. Undefined: full weight throughout.
   */
  canaryWeightPercent?: number;
}

export interface Settings {
  hosts: HostTarget[];
  /** The app's user: every command on the app hosts runs as it through `sudo -n -u` (undefined: as the SSH user). */
  become?: string;
  ssh: SshSettings;
  appDir: string;
  /** Absolute local directory to upload, or undefined for "no upload" (the release is already on the hosts). */
  source?: string;
  release: string;
  keepReleases: number;
  sharedPaths: string[];
  installCommand?: string;
  migration: MigrationSettings;
  server: ServerKind;
  /** One of the server's strategies (checked per server by parseSettings). */
  strategy: GunicornStrategy | UwsgiStrategy;
  pidfile: string;
  /** The systemd service gunicorn runs in (`gunicorn.service`): its MainPID is the master; no pidfile needed. */
  service?: string;
  /** server-log: the app server's log file on the hosts, read when a host fails (undefined: the service's journal, or none). */
  serverLog?: string;
  /** WSGI app spec (`module:callable`) for the import check when the master's argv is hidden. */
  wsgiApp?: string;
  /** Interpreter for the checks (import, config read, readiness probe, Alembic); found from the master when unset. */
  python?: string;
  reloadTimeoutSeconds: number;
  health: HealthSettings;
  rollback: 'auto' | 'never';
  mode: Mode;
  /**
   * The release is already current: `skip` (every host current and serving it: nothing to do),
   * `redeploy` (reload it in place), `fail`.
   */
  ifCurrent: IfCurrent;
  /** Seconds to wait for another live run's deploy lock before failing. */
  lockWaitSeconds: number;
  /** mode: unlock removes a lock even when its holder is still alive. */
  forceUnlock: boolean;
  rollout: RolloutSettings;
  /** undefined when lb is empty: the action never talks to a balancer. */
  balancer?: BalancerSettings;
}
