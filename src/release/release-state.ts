/** What a host's app-dir holds, read by readStateCommand. */
export interface ReleaseState {
  /** Release name `current` points to, if any. */
  current?: string;
  previous?: string;
  /** Releases on disk, oldest first. */
  releases: { name: string; mtime: number }[];
  /** `.upload-*`, `.incoming-*`, `.replaced-*` (older runs), `.migrate-*` entries of releases/ (a run stopped mid-stage). */
  leftovers: string[];
  /** The deploy lock's owner line (`token=… run=…`), when a run holds it. */
  lockOwner?: string;
}

export function parseReleaseState(stdout: string): ReleaseState {
  const state: ReleaseState = { releases: [], leftovers: [] };
  for (const line of stdout.split('\n')) {
    const [key, ...rest] = line.split('=');
    const value = rest.join('=').trim();
    if (key === 'current' && value) state.current = releaseNameOf(value);
    else if (key === 'previous' && value) state.previous = releaseNameOf(value);
    else if (key === 'lock' && value) state.lockOwner = value;
    else if (key === 'leftover' && value) state.leftovers.push(value);
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

/** The run token at the end of a staging name: `.upload-v2-<token>.tar.gz`, `.incoming-v2-<token>`. */
const LEFTOVER_TOKEN = /^\.(?:upload|incoming|replaced|migrate)-.+-([0-9a-f]+)(?:\.tar\.gz)?$/;

/**
 * Which leftovers of interrupted runs to delete: never this run's own (`token`), never those of
 * the run named in the lock file (it may be staging right now), never a name without a token.
 */
export function leftoversToPrune(state: ReleaseState, token: string): string[] {
  const holder = /(?:^|\s)token=(\S+)/.exec(state.lockOwner ?? '')?.[1];
  return state.leftovers.filter((name) => {
    const owner = LEFTOVER_TOKEN.exec(name)?.[1];
    return owner !== undefined && owner !== token && owner !== holder;
  });
}
