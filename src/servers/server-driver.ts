import type { RemoteHost } from '../remote/remote-host.js';

/** A running app server, verified as this app's, as a server driver sees it. */
export interface ServerProcess {
  pid: number;
  workers: number[];
  /** Interpreter on the host used for checks (import, readiness probe). */
  python: string;
}

/** A reload in flight: the new code serves; the caller decides whether it stays. */
export interface ReloadHandle {
  /** The master serving after the reload, and its workers, for the report. */
  master: ServerProcess;
  /** Makes the new generation the only one (e.g. TERM the old master after USR2). */
  commit(): Promise<ServerProcess>;
  /**
   * Puts the previous generation back. Called after `current` points to the previous
   * release again; resolves once the previous code serves.
   */
  revert(): Promise<ServerProcess>;
}

export type Log = (line: string) => void;

/** What every server (gunicorn, later uwsgi) offers the deploy story. */
export interface ServerDriver {
  /** Finds the running server and verifies it is this app's, or throws MasterCheckError. */
  inspect(host: RemoteHost): Promise<ServerProcess>;
  /** Checks, before any switch, that the release in `releaseDir` can be loaded by this server. */
  preflight(host: RemoteHost, server: ServerProcess, releaseDir: string): Promise<void>;
  /** Reloads after `current` was switched; resolves when the new generation is up. */
  reload(host: RemoteHost, server: ServerProcess, log: Log): Promise<ReloadHandle>;
}
