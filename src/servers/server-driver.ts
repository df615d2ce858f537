import { CancelledError, HostUnreachableError, ReloadError } from '../errors.js';
import type { RemoteHost } from '../remote/remote-host.js';

/** A running app server, verified as this app's, as a server driver sees it. */
export interface ServerProcess {
  pid: number;
  workers: number[];
  /** Interpreter on the host used for checks (import, readiness probe). */
  python: string;
  /** How `python` was found (e.g. the python input, the master's command line), for the log. */
  pythonFrom?: string;
}

/** A reload in flight: the new code serves; the caller decides whether it stays. */
export interface ReloadHandle<P extends ServerProcess = ServerProcess> {
  /** The master serving after the reload, and its workers, for the report. */
  master: P;
  /** Makes the new generation the only one (e.g. TERM the old master after USR2). */
  commit(): Promise<P>;
  /**
   * Puts the previous generation back. Called after `current` points to the previous
   * release again; resolves once the previous code serves.
   */
  revert(): Promise<P>;
}

export type Log = (line: string) => void;

/**
 * How far a reload got, for the caller's timeline: `signalled` once the server was told to load
 * the new code (USR2, HUP, the first TTIN), `booted` once the new generation is up (what follows
 * is the old one leaving). A driver that cannot tell reports nothing.
 */
export type ReloadStep = 'signalled' | 'booted';
export type ReloadProgress = (step: ReloadStep) => void;

/** What every server (gunicorn, later uwsgi) offers the deploy story. */
export interface ServerDriver<P extends ServerProcess = ServerProcess> {
  /** Finds the running server and verifies it is this app's, or throws MasterCheckError. */
  inspect(host: RemoteHost): Promise<P>;
  /** Checks, before any switch, that the release in `releaseDir` can be loaded by this server. */
  preflight(host: RemoteHost, server: P, releaseDir: string): Promise<void>;
  /**
   * Reloads after `current` was switched; resolves when the new generation is up. `signal` is
   * the run's cancellation: the forward waits stop at their next turn and the strategy hands
   * back what it started (the failure's handle or `previousIntact`), so the caller can put the
   * host in order. Reloads that put a host back take none. `progress` hears the reload's steps.
   */
  reload(host: RemoteHost, server: P, log: Log, signal?: AbortSignal, progress?: ReloadProgress): Promise<ReloadHandle<P>>;
  /**
   * Brings a host a dead run left half-changed (two masters, an idle old master, workers of two
   * releases, `current` ahead of what serves) to one consistent release, or throws
   * LeftoverStateError naming the state and the fix. Signals only processes verified as this
   * app's, never leaves the host without workers. Called with the deploy lock held.
   */
  settle(host: RemoteHost, pointCurrent: PointCurrent, log: Log): Promise<Settled>;
}

/** Points `current` at a release (a release-level act a driver asks for while settling). */
export type PointCurrent = (release: string) => Promise<void>;

/** What settling a host found and did. */
export interface Settled {
  /** The state as found, one line. */
  found: string;
  /** Whether anything was changed. */
  repaired: boolean;
  /** The release the host serves now, when the driver knows it. */
  serves?: string;
}

/**
 * A reload that failed. `handle` is set when the new generation got far enough that undoing it
 * takes the strategy's own revert; `previousIntact` when the old generation never stopped
 * serving the previous code (switching `current` back is all that is left to do).
 */
export class ReloadFailure extends ReloadError {
  /** The failure was the host's SSH connection going away: the deploy puts it back last. */
  readonly hostUnreachable: boolean;
  /** The reload stopped because the run was cancelled, not on a failure of its own. */
  readonly cancelled: boolean;

  constructor(
    cause: Error,
    host: string,
    readonly previousIntact: boolean,
    readonly handle?: ReloadHandle,
  ) {
    super(cause.message.replace(`[${host}] `, ''), host);
    this.hostUnreachable = cause instanceof HostUnreachableError;
    this.cancelled = cause instanceof CancelledError;
  }
}
