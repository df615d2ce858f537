import type { RemoteHost } from '../remote/remote-host.js';
import { sh, type ShellFragment } from '../remote/shell-quote.js';
import type { ServerDriver, Settled } from '../servers/server-driver.js';
import type { Layout } from './layout.js';
import { pruneCommand, readStateCommand, switchCurrentCommand } from './release-commands.js';
import { leftoversToPrune, parseReleaseState } from './release-state.js';

/** What settling one host found and did, for the log, the post step's summary and tests. */
export interface HostSettled extends Settled {
  host: string;
  /** Upload/unpack entries of releases/ and temporary links of app-dir that were removed. */
  removed: string[];
}

/**
 * Brings a host a dead run left half-changed back to one consistent release before anything
 * else happens there: removes what its staging left (.upload-*, .incoming-*, .replaced-*,
 * .migrate-* in releases/, `current.<token>` links), then lets the server driver settle the processes,
 * pointing `current` where the driver says. Called with this run's lock held (`token`), so
 * every other run's staging leftovers are dead.
 */
export async function settleHost(remote: RemoteHost, layout: Layout, token: string, server: ServerDriver, log: (line: string) => void): Promise<HostSettled> {
  const [read, linked] = await Promise.all([remote.exec('read releases', readStateCommand(layout)), remote.exec('look for temporary links', tempLinksCommand(layout))]);
  const state = parseReleaseState(read.stdout);
  const links = tempLinksOf(linked.stdout, token);
  const stale = leftoversToPrune(state, token);
  if (stale.length) await remote.exec('remove what interrupted runs left in releases/', pruneCommand(layout, stale));
  if (links.length) await remote.exec('remove temporary links of interrupted runs', sh`cd ${layout.appDir} && rm -f -- ${links}`);
  const removed = [...stale, ...links];
  if (removed.length) log(`removed what interrupted runs left: ${removed.join(', ')}`);
  // No release yet: nothing serves from here, and inspect says what to do.
  if (!state.current) return { host: remote.name, found: 'no current release', repaired: removed.length > 0, removed };
  const pointCurrent = async (release: string) => {
    await remote.exec(`point current at ${release}`, switchCurrentCommand(layout, release, undefined, token));
  };
  const settled = await server.settle(remote, pointCurrent, log);
  if (settled.repaired) log(`settled: was ${settled.found}; now serves ${settled.serves ?? 'one release'}`);
  return { host: remote.name, ...settled, repaired: settled.repaired || removed.length > 0, removed };
}

/** Lists app-dir's `current.*` and `previous.*` symlinks (pointLinkCommand's temporary names). */
export function tempLinksCommand(layout: Layout): ShellFragment {
  return sh`cd ${layout.appDir} 2>/dev/null && for l in current.* previous.*; do [ -L "$l" ] && printf '%s\n' "$l"; done; true`;
}

/** The temporary links a dead run left: `current.<hex token>` / `previous.<hex token>`, never this run's. */
export function tempLinksOf(stdout: string, token: string): string[] {
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => /^(?:current|previous)\.[0-9a-f]+$/.test(name) && !name.endsWith(`.${token}`));
}
