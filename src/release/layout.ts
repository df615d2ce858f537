/** Where things live under app-dir (Capistrano's layout plus a `previous` link and a lock). */
export interface Layout {
  appDir: string;
  releases: string;
  current: string;
  previous: string;
  shared: string;
  run: string;
  lock: string;
  /**
   * One line per switch of `current` (`<epoch> <from> <to>`), the last 20 kept: what a worker
   * serves is what `current` named when it started, so a run that arrives after one that died
   * mid-reload can tell the generations apart (see servers/gunicorn/leftover-state.ts).
   */
  switchLog: string;
  releaseDir(name: string): string;
}

export function layoutOf(appDir: string): Layout {
  return {
    appDir,
    releases: `${appDir}/releases`,
    current: `${appDir}/current`,
    previous: `${appDir}/previous`,
    shared: `${appDir}/shared`,
    run: `${appDir}/run`,
    lock: `${appDir}/.deploy-lock`,
    switchLog: `${appDir}/.switch-log`,
    releaseDir: (name) => `${appDir}/releases/${name}`,
  };
}
