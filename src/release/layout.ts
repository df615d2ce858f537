/** Where things live under app-dir (Capistrano's layout plus a `previous` link and a lock). */
export interface Layout {
  appDir: string;
  releases: string;
  current: string;
  previous: string;
  shared: string;
  run: string;
  lock: string;
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
    releaseDir: (name) => `${appDir}/releases/${name}`,
  };
}
