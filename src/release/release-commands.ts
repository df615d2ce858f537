import { joinFragments, raw, sh, type ShellFragment } from '../remote/shell-quote.js';
import type { Layout } from './layout.js';

/**
 * Pure builders for every release-management command. Each value is quoted by `sh`; tests
 * check them as strings and the end-to-end suite runs them for real.
 */

/** Exit code used by the lock command when another run holds the lock. */
export const LOCK_HELD_EXIT = 75;

/** Creates releases/, shared/ and run/ if missing. */
export function prepareLayoutCommand(layout: Layout): ShellFragment {
  return sh`mkdir -p ${layout.releases} ${layout.shared} ${layout.run}`;
}

/**
 * Takes the per-host deploy lock: mkdir is atomic, so only one run can create the directory;
 * the owner file says who holds it and the heartbeat file's mtime says when the holder was last
 * alive. When held, prints the owner file and `heartbeat-age=<seconds>` and exits LOCK_HELD_EXIT.
 */
export function acquireLockCommand(layout: Layout, ownerText: string): ShellFragment {
  const owner = `${layout.lock}/owner`;
  const heartbeat = `${layout.lock}/heartbeat`;
  return sh`mkdir -p ${layout.appDir} && if mkdir ${layout.lock} 2>/dev/null; then printf '%s\n' ${ownerText} > ${owner} && touch ${heartbeat}; else ${describeLock(layout)}; exit ${LOCK_HELD_EXIT}; fi`;
}

/** Prints the lock's owner file and the age of its heartbeat (`heartbeat-age=` empty when none). */
function describeLock(layout: Layout): ShellFragment {
  const heartbeat = `${layout.lock}/heartbeat`;
  return sh`cat ${`${layout.lock}/owner`} 2>/dev/null; b=$(stat -c %Y ${heartbeat} 2>/dev/null || stat -c %Y ${layout.lock} 2>/dev/null); printf 'heartbeat-age=%s\n' "$([ -n "$b" ] && echo $(( $(date +%s) - b )))"`;
}

/** Prints `locked=yes|no` and, when locked, what describeLock prints. Changes nothing. */
export function readLockCommand(layout: Layout): ShellFragment {
  return sh`if [ -d ${layout.lock} ]; then echo locked=yes; ${describeLock(layout)}; else echo locked=no; fi`;
}

/** Marks the holder alive: touches the heartbeat only while this run (its token) owns the lock. */
export function heartbeatCommand(layout: Layout, token: string): ShellFragment {
  return sh`grep -qF ${token} ${`${layout.lock}/owner`} 2>/dev/null && touch ${`${layout.lock}/heartbeat`}; true`;
}

/** Releases the lock only if this run still owns it (its token is in the owner file). */
export function releaseLockCommand(layout: Layout, token: string): ShellFragment {
  return sh`if grep -qF ${token} ${`${layout.lock}/owner`} 2>/dev/null; then rm -rf ${layout.lock}; fi`;
}

/**
 * Removes a lock whatever run holds it (mode: unlock), but only the one that was inspected:
 * when its owner file no longer holds `expectedToken`, another run took it meanwhile and it stays.
 */
export function breakLockCommand(layout: Layout, expectedToken: string): ShellFragment {
  return sh`if [ ! -d ${layout.lock} ]; then echo gone; elif grep -qF ${`token=${expectedToken}`} ${`${layout.lock}/owner`} 2>/dev/null || [ -z ${expectedToken} ]; then rm -rf ${layout.lock} && echo removed; else echo changed; fi`;
}

/** Appends one line to the host's audit log, <app-dir>/deploy.log. */
export function appendAuditCommand(layout: Layout, line: string): ShellFragment {
  return sh`printf '%s\n' ${line} >> ${`${layout.appDir}/deploy.log`}`;
}

/**
 * Prints `current=`, `previous=` (link targets), `lock=` (the lock's owner line, if held), one
 * `release=<mtime> <name>` line per release and one `leftover=<name>` line per upload or
 * unpack directory an interrupted run left in releases/. Reads only.
 */
export function readStateCommand(layout: Layout): ShellFragment {
  return sh`printf 'current=%s\n' "$(readlink ${layout.current} 2>/dev/null)"; printf 'previous=%s\n' "$(readlink ${layout.previous} 2>/dev/null)"; printf 'lock=%s\n' "$(head -n 1 ${`${layout.lock}/owner`} 2>/dev/null)"; cd ${layout.releases} 2>/dev/null && { for r in *; do [ -d "$r" ] && [ ! -L "$r" ] && printf 'release=%s %s\n' "$(stat -c %Y "$r")" "$r"; done; for f in .upload-* .incoming-* .replaced-* .migrate-*; do { [ -e "$f" ] || [ -L "$f" ]; } && printf 'leftover=%s\n' "$f"; done; }; true`;
}

/**
 * Unpacks an uploaded archive into releases/<name> (or `dir`, e.g. mode: migrate's scratch
 * copy) through a temporary directory and a rename, so a half-written release is never visible
 * under its real name. A directory already there is never replaced: the command fails naming
 * it before unpacking anything (the deploy checks this on every host before any change; this is
 * the last guard).
 */
export function unpackReleaseCommand(layout: Layout, release: string, archive: string, token: string, dir = layout.releaseDir(release)): ShellFragment {
  const incoming = `${layout.releases}/.incoming-${release}-${token}`;
  return joinFragments(
    [
      sh`{ [ ! -e ${dir} ] || { echo ${`${dir} already exists; a deploy never replaces a release`} >&2; false; }; }`,
      sh`rm -rf ${incoming}`,
      sh`mkdir -p ${incoming}`,
      // As root, tar would restore the archive's owners; the release belongs to the SSH user.
      sh`tar --no-same-owner -xzf ${archive} -C ${incoming}`,
      sh`rm -f ${archive}`,
      sh`printf '%s\n' ${release} > ${`${incoming}/REVISION`}`,
      sh`mv -T ${incoming} ${dir}`,
    ],
    ' && ',
  );
}

/** Removes what a failed unpack left behind. */
export function discardIncomingCommand(layout: Layout, release: string, archive: string, token: string): ShellFragment {
  return sh`rm -rf ${`${layout.releases}/.incoming-${release}-${token}`} ${archive}`;
}

/**
 * Links each shared path into the release. A path ending in '/' is a directory and is
 * created in shared/ on first use; any other path must already exist in shared/ (a missing
 * `.env` is an error, not an empty file).
 */
export function linkSharedCommand(layout: Layout, release: string, sharedPaths: string[], dir = layout.releaseDir(release)): ShellFragment {
  const steps = sharedPaths.map((entry) => {
    const isDir = entry.endsWith('/');
    const name = entry.replace(/\/+$/, '');
    const source = `${layout.shared}/${name}`;
    const link = `${dir}/${name}`;
    const ensure = isDir
      ? sh`mkdir -p ${source}`
      : sh`{ [ -e ${source} ] || { echo ${`shared path ${source} does not exist; create it on the host first`} >&2; exit 1; }; }`;
    return sh`${ensure} && rm -rf ${link} && mkdir -p "$(dirname ${link})" && ln -s ${source} ${link}`;
  });
  return steps.length ? joinFragments(steps, ' && ') : raw('true');
}

/** Runs the user's install command in the release directory (or `dir`) with RELEASE and RELEASE_DIR set. */
export function installCommand(layout: Layout, release: string, command: string, dir = layout.releaseDir(release)): ShellFragment {
  return sh`cd ${dir} && RELEASE=${release} RELEASE_DIR=${dir} sh -c ${command}`;
}

/**
 * Points `link` (current or previous) at releases/<name> atomically: a new symlink under a
 * temporary name renamed over the old one, so there is no instant without a valid link.
 */
export function pointLinkCommand(link: string, release: string, token: string): ShellFragment {
  const temporary = `${link}.${token}`;
  return sh`rm -f ${temporary} && ln -s ${`releases/${release}`} ${temporary} && mv -T ${temporary} ${link}`;
}

/** Succeeds when releases/<name> exists (source is empty: the release was put there some other way). */
export function releaseExistsCommand(layout: Layout, release: string): ShellFragment {
  return sh`test -d ${layout.releaseDir(release)}`;
}

/**
 * Switches current to `release`. `previous` says what the `previous` link should name
 * afterwards: a release, `null` to remove the link, undefined to leave it as it is.
 */
export function switchCurrentCommand(layout: Layout, release: string, previous: string | null | undefined, token: string): ShellFragment {
  const steps = [releaseExistsCommand(layout, release)];
  if (previous === null) steps.push(sh`rm -f ${layout.previous}`);
  else if (previous !== undefined && previous !== release) steps.push(pointLinkCommand(layout.previous, previous, token));
  steps.push(sh`f=$(readlink ${layout.current} 2>/dev/null || true)`);
  steps.push(pointLinkCommand(layout.current, release, token));
  steps.push(recordSwitchCommand(layout, release));
  return joinFragments(steps, ' && ');
}

/**
 * Appends `<epoch> <from> <to>` to the switch log (from = `$f`, read before the switch) and
 * keeps its last 20 lines. Written after the switch, so its time is never before the link's.
 */
function recordSwitchCommand(layout: Layout, release: string): ShellFragment {
  const log = layout.switchLog;
  return sh`{ printf '%s %s %s\n' "$(date +%s.%N)" "\${f:--}" ${`releases/${release}`} >> ${log} && tail -n 20 ${log} > ${`${log}.tmp`} && mv -f ${`${log}.tmp`} ${log}; }`;
}

/** Removes releases/<release> unless `current` or `previous` names it; prints `removed` when it did. */
export function discardStagedReleaseCommand(layout: Layout, release: string): ShellFragment {
  const dir = layout.releaseDir(release);
  // The links' last path component, whether they are written relative (releases/v1) or absolute.
  return sh`c=$(readlink ${layout.current} 2>/dev/null); c=\${c%/}; p=$(readlink ${layout.previous} 2>/dev/null); p=\${p%/}; if [ "\${c##*/}" != ${release} ] && [ "\${p##*/}" != ${release} ] && [ -d ${dir} ]; then rm -rf -- ${dir} && echo removed; fi`;
}

/** Deletes the named entries of releases/ (chosen by releasesToPrune and leftoversToPrune). */
export function pruneCommand(layout: Layout, releases: string[]): ShellFragment {
  if (releases.length === 0) return raw('true');
  return sh`cd ${layout.releases} && rm -rf -- ${releases}`;
}
