/** What a host's app-dir holds, read by readStateCommand. */
export interface ReleaseState {
  /** Release name `current` points to, if any. */
  current?: string;
  previous?: string;
  /** Releases on disk, oldest first. */
  releases: { name: string; mtime: number }[];
}

export function parseReleaseState(stdout: string): ReleaseState {
  const state: ReleaseState = { releases: [] };
  for (const line of stdout.split('\n')) {
    const [key, ...rest] = line.split('=');
    const value = rest.join('=').trim();
    if (key === 'current' && value) state.current = releaseNameOf(value);
    else if (key === 'previous' && value) state.previous = releaseNameOf(value);
    else if (key === 'release' && value) {
      const [mtime = '0', ...name] = value.split(' ');
      state.releases.push({ name: name.join(' '), mtime: Number(mtime) });
    }
  }
  state.releases.sort((a, b) => a.mtime - b.mtime || a.name.localeCompare(b.name));
  return state;
}

/** `releases/v1`, `/srv/app/releases/v1/` → `v1`. */
function releaseNameOf(target: string): string {
  return target.replace(/\/+$/, '').split('/').pop() ?? target;
}

/**
 * Which releases to delete so that `keep` remain, oldest first, never the ones in `protect`
 * (current, previous, the release being deployed).
 */
export function releasesToPrune(state: ReleaseState, keep: number, protect: (string | undefined)[]): string[] {
  const kept = new Set(protect.filter((name): name is string => Boolean(name)));
  const candidates = state.releases.filter((release) => !kept.has(release.name));
  const excess = state.releases.length - keep;
  return excess > 0 ? candidates.slice(0, excess).map((release) => release.name) : [];
}
