import { LockHeldError, RemoteCommandError } from '../errors.js';
import { sleep as realSleep, throwIfCancelled } from '../poll.js';
import type { RemoteHost } from '../remote/remote-host.js';
import type { Layout } from './layout.js';
import { LOCK_HELD_EXIT, acquireLockCommand, breakLockCommand, heartbeatCommand, readLockCommand } from './release-commands.js';
import type { RunIdentity } from './run-identity.js';

/** How often a run that holds locks touches their heartbeat files. */
export const HEARTBEAT_SECONDS = 10;
/**
 * A lock whose heartbeat is older than this belongs to a run that is gone (killed with its
 * runner, or cancelled before it could clean up): six missed beats, so a slow link or a busy
 * host never makes a live run look dead.
 */
export const STALE_AFTER_SECONDS = 60;
/** How often a waiting run asks again. */
const RETRY_SECONDS = 5;

/** What a lock's files say about its holder. */
export interface LockHolder {
  token?: string;
  run?: string;
  actor?: string;
  from?: string;
  since?: string;
  /** Seconds since the holder last touched the heartbeat; undefined when unknown. */
  heartbeatAge?: number;
}

/** The owner file's text: one `key=value` per line, so a person reading it sees who and when. */
export function ownerText(token: string, identity: RunIdentity, since: Date): string {
  return [`token=${token}`, `run=${identity.run}`, `actor=${identity.actor}`, `from=${identity.from}`, `since=${since.toISOString()}`].join('\n');
}

/** Parses what describeLock prints (owner lines, older one-line owners too, and the heartbeat age). */
export function parseLockHolder(text: string): LockHolder {
  const holder: LockHolder = {};
  for (const match of text.matchAll(/(?:^|\s)(token|run|actor|from|since|heartbeat-age)=(\S*)/gm)) {
    const [, key = '', value = ''] = match;
    if (key === 'heartbeat-age') holder.heartbeatAge = value === '' ? undefined : Number(value);
    else holder[key as 'token' | 'run' | 'actor' | 'from' | 'since'] = value;
  }
  return holder;
}

/** Whether the holder has been seen alive recently enough to count as running. */
export function isAlive(holder: LockHolder): boolean {
  return holder.heartbeatAge !== undefined && holder.heartbeatAge < STALE_AFTER_SECONDS;
}

/** One line naming a holder for logs and errors. */
export function describeHolder(holder: LockHolder): string {
  const who = [holder.run && `run ${holder.run}`, holder.actor && `by ${holder.actor}`, holder.from && `from ${holder.from}`, holder.since && `since ${holder.since}`];
  const beat = holder.heartbeatAge === undefined ? 'no heartbeat' : `last heartbeat ${holder.heartbeatAge}s ago`;
  return `${who.filter(Boolean).join(' ') || 'an unknown run'} (${beat})`;
}

export interface LockWaitOptions {
  /** Seconds to wait for a live holder to finish; 0 = fail at once. */
  waitSeconds: number;
  log: (line: string) => void;
  /** Injected by unit tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** The run's cancellation: stops the wait. */
  signal?: AbortSignal;
}

/**
 * Takes the deploy lock of one host, waiting up to `waitSeconds` while a live run holds it.
 * A holder whose heartbeat stopped is a dead run: waiting for it is pointless, so that fails
 * at once, naming `mode: unlock` as the fix.
 */
export async function acquireLock(remote: RemoteHost, layout: Layout, owner: string, options: LockWaitOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? ((ms: number) => realSleep(ms, options.signal));
  const deadline = now() + options.waitSeconds * 1000;
  let announced = false;
  for (;;) {
    throwIfCancelled(options.signal, 'take the deploy lock', remote.name);
    const result = await remote.exec('take the deploy lock', acquireLockCommand(layout, owner), { allowFailure: true });
    if (result.code === 0) return;
    if (result.code !== LOCK_HELD_EXIT) throw new RemoteCommandError('take the deploy lock', remote.name, result.code, result.stderr.trim());
    const holder = parseLockHolder(result.stdout);
    if (!isAlive(holder)) {
      throw new LockHeldError(
        `${layout.lock} is held by ${describeHolder(holder)}, which is no longer running. ` +
          `Check the host, then remove the lock with 'mode: unlock' (it shows whose lock it was), and deploy again.`,
        remote.name,
      );
    }
    if (now() + RETRY_SECONDS * 1000 > deadline) {
      const waited = options.waitSeconds > 0 ? ` after waiting ${options.waitSeconds}s (lock-wait)` : ' (lock-wait is 0)';
      throw new LockHeldError(`another deploy holds ${layout.lock}: ${describeHolder(holder)}${waited}. Let it finish, or raise lock-wait. If that run was killed, its lock counts as abandoned once the heartbeat is ${STALE_AFTER_SECONDS}s old: a run then says so, and 'mode: unlock' removes it.`, remote.name);
    }
    // A run killed with its runner still looks alive until its heartbeat is STALE_AFTER_SECONDS old; the wait ends then, not at lock-wait.
    if (!announced) options.log(`waiting up to ${options.waitSeconds}s for the deploy lock, held by ${describeHolder(holder)}; a run that was killed shows as gone once its heartbeat is ${STALE_AFTER_SECONDS}s old`);
    announced = true;
    await wait(RETRY_SECONDS * 1000);
  }
}

/**
 * Touches the heartbeat of every lock this run holds, every HEARTBEAT_SECONDS, until stopped.
 * A failed beat is ignored: the next one retries, and STALE_AFTER_SECONDS allows six misses.
 */
export function startHeartbeat(remotes: () => RemoteHost[], layout: Layout, token: string): () => void {
  const timer = setInterval(() => {
    for (const remote of remotes()) void remote.exec('deploy lock heartbeat', heartbeatCommand(layout, token), { allowFailure: true, timeoutSeconds: HEARTBEAT_SECONDS }).catch(() => undefined);
  }, HEARTBEAT_SECONDS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/** What `mode: unlock` did on one host. */
export type UnlockResult = { removed: false; reason: 'not-locked' } | { removed: true; holder: LockHolder } | { removed: false; reason: 'alive' | 'changed'; holder: LockHolder };

/**
 * Removes a host's deploy lock, showing whose it was. A holder that is demonstrably alive (a
 * fresh heartbeat) keeps its lock unless `force`: breaking a running deploy's lock is how two
 * runs end up changing one host.
 */
export async function unlock(remote: RemoteHost, layout: Layout, force: boolean): Promise<UnlockResult> {
  const read = (await remote.exec('read the deploy lock', readLockCommand(layout))).stdout;
  if (!read.includes('locked=yes')) return { removed: false, reason: 'not-locked' };
  const holder = parseLockHolder(read);
  if (isAlive(holder) && !force) return { removed: false, reason: 'alive', holder };
  const result = (await remote.exec('remove the deploy lock', breakLockCommand(layout, holder.token ?? ''))).stdout.trim();
  if (result === 'changed') return { removed: false, reason: 'changed', holder };
  return { removed: true, holder };
}
