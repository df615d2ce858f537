import { randomBytes } from 'node:crypto';
import type { Settings } from './config/settings.js';
import { DeployError, HostUnreachableError, errorMessage } from './errors.js';
import { throwIfCancelled } from './poll.js';
import { MigrationError, MigrationLintError, type MigrationResult } from './migrate/index.js';
import { probe, redactedUrl, waitUntilReady } from './health/readiness-gate.js';
import { layoutOf, type Layout } from './release/layout.js';
import { packSource } from './release/pack-source.js';
import { auditLine } from './release/audit-log.js';
import { acquireLock, describeHolder, ownerText, startHeartbeat, unlock } from './release/deploy-lock.js';
import { runIdentity, type RunIdentity } from './release/run-identity.js';
import {
  appendAuditCommand,
  discardIncomingCommand,
  installCommand,
  linkSharedCommand,
  prepareLayoutCommand,
  pruneCommand,
  readStateCommand,
  releaseExistsCommand,
  releaseLockCommand,
  switchCurrentCommand,
  unpackReleaseCommand,
} from './release/release-commands.js';
import { leftoversToPrune, parseReleaseState, releasesToPrune, type ReleaseState } from './release/release-state.js';
import type { RemoteHostFactory } from './remote/ssh-remote-host.js';
import type { RemoteHost } from './remote/remote-host.js';
import type { DeployOutcome, HostReport, Reporter } from './report/reporter.js';
import { Timeline, reloadSteps, type NextPhase, type Phase } from './report/timeline.js';
import { ReloadFailure, type ReloadHandle, type ServerDriver, type ServerProcess } from './servers/server-driver.js';

/** Everything the story needs from outside, so it can run against stubs. */
export interface DeployDependencies {
  connect: RemoteHostFactory;
  server: ServerDriver;
  reporter: Reporter;
  /** The migration step (main.ts binds it to runMigrationStep); runs once, on one host, before any reload. */
  migrate?: (host: RemoteHost, python: string, releaseDir: string, log: (line: string) => void) => Promise<MigrationResult>;
  /** Who runs this deploy, for locks and audit lines; default: from process.env. */
  identity?: RunIdentity;
  /**
   * The runner's cancellation (SIGINT/SIGTERM). Nothing new starts once it aborts; the host in
   * flight is finished to one consistent release (see rollOut), hosts already done stay done.
   */
  signal?: AbortSignal;
  /** Where each host's phases are timed, for the `hosts` output and the summary's chart; deploy() starts one when unset. */
  timeline?: Timeline;
}

/** Times `work` as `phase` of `host` on the run's timeline. */
function timed<T>(deps: DeployDependencies, host: string, phase: Phase, work: (next: NextPhase) => Promise<T>): Promise<T> {
  return deps.timeline ? deps.timeline.track(host, phase, work) : work(() => undefined);
}

/** One host during a deploy. */
interface HostSession {
  remote: RemoteHost;
  report: HostReport;
  state: ReleaseState;
  server: ServerProcess;
  /** The release to put in place on this host. */
  target: string;
  /** What `current` pointed to before this run. */
  leaving: string;
  /** Whether the response of `leaving` names its version (decides expect-version: auto). */
  versioned: boolean;
}

/** A failed deploy, carrying the outcome for the outputs. */
export class DeployFailed extends DeployError {
  constructor(readonly outcome: DeployOutcome) {
    super(outcome.error ?? outcome.status);
  }
}

/**
 * The life of one deploy (or rollback): connect and verify every host, lock, stage, check,
 * then switch and reload host by host behind a readiness gate, putting every touched host
 * back when one fails.
 */
export async function deploy(settings: Settings, dependencies: DeployDependencies): Promise<DeployOutcome> {
  const deps = { ...dependencies, timeline: dependencies.timeline ?? new Timeline() };
  const token = randomBytes(6).toString('hex');
  const started = new Date();
  const identity = deps.identity ?? runIdentity(process.env);
  const layout = layoutOf(settings.appDir);
  const { reporter } = deps;
  const outcome: DeployOutcome = { status: 'failed', release: settings.release, strategy: settings.strategy, hosts: [] };

  const remotes = await reporter.group('Connect', () => connectAll(settings, deps));
  const checkpoint = (what: string) => throwIfCancelled(deps.signal, what);
  if (settings.mode === 'unlock') return unlockAll(settings, deps, remotes, layout, { identity, started, outcome });
  const locked: RemoteHost[] = [];
  const stopHeartbeat = startHeartbeat(() => locked, layout, token);
  try {
    // plan reads only: no lock (it would create app-dir and the lock directory on each host).
    if (settings.mode !== 'plan') {
      await reporter.group('Lock', async () => {
        const owner = ownerText(token, identity, started);
        // One order for every run, so two runs waiting for each other's hosts cannot deadlock.
        for (const remote of [...remotes].sort((a, b) => a.name.localeCompare(b.name))) {
          await timed(deps, remote.name, 'lock', () => acquireLock(remote, layout, owner, { waitSeconds: settings.lockWaitSeconds, log: (line) => reporter.log(remote.name, line), signal: deps.signal }));
          locked.push(remote);
          reporter.log(remote.name, 'deploy lock taken');
        }
      });
    }
    checkpoint('inspect the hosts');
    const sessions = await reporter.group('Inspect', () => inspectAll(settings, deps, remotes, layout));
    outcome.hosts = sessions.map((session) => session.report);
    outcome.release = sessions[0]?.target ?? settings.release;
    outcome.previousRelease = sessions[0]?.leaving;

    if (settings.mode === 'plan') {
      for (const session of sessions) {
        session.report.status = 'planned';
        if (session.state.lockOwner) reporter.log(session.remote.name, `another run holds the deploy lock now (${session.state.lockOwner}); a deploy would wait for it`);
      }
      outcome.status = 'planned';
      return outcome;
    }
    if (settings.mode === 'deploy') {
      await stageAll(settings, deps, sessions, layout, token);
      await reporter.group('Check the new release', async () => {
        for (const session of sessions) {
          checkpoint(`check the new release on ${session.remote.name}`);
          await timed(deps, session.remote.name, 'check', () => deps.server.preflight(session.remote, session.server, layout.releaseDir(session.target)));
          const from = session.server.pythonFrom ? ` (found from ${session.server.pythonFrom})` : '';
          reporter.log(session.remote.name, `release ${session.target} loads with ${session.server.python}${from}`);
        }
      });
      checkpoint('migrate');
      if (settings.migration.command && deps.migrate) await migrateOnce(settings, deps, sessions, layout, outcome);
    }

    await rollOut(settings, deps, sessions, layout, token, outcome);
    await reporter.group('Prune old releases', async () => {
      for (const session of sessions) await prune(settings, session, layout, token, reporter);
    });
    outcome.status = 'deployed';
    return outcome;
  } catch (error) {
    if (error instanceof DeployFailed) throw error;
    outcome.error = errorMessage(error);
    if (deps.signal?.aborted) {
      outcome.status = 'cancelled';
      outcome.error = `${cancelledMessage(outcome)} (at: ${outcome.error})`;
    }
    throw new DeployFailed(outcome);
  } finally {
    for (const host of outcome.hosts) host.timeline = deps.timeline.spans(host.host);
    stopHeartbeat();
    for (const remote of locked) {
      if (settings.mode !== 'plan') await audit(remote, layout, settings, { identity, started, outcome });
      await remote.exec('release the deploy lock', releaseLockCommand(layout, token), { allowFailure: true }).catch(() => undefined);
    }
    await Promise.all(remotes.map((remote) => remote.close()));
  }
}

interface RunRecord {
  identity: RunIdentity;
  started: Date;
  outcome: DeployOutcome;
}

/** Appends this run's line to the host's deploy.log; a failure to write it is only a warning. */
async function audit(remote: RemoteHost, layout: Layout, settings: Settings, run: RunRecord, result?: string): Promise<void> {
  const report = run.outcome.hosts.find((host) => host.host === remote.name);
  const line = auditLine({
    time: new Date(),
    identity: run.identity,
    mode: settings.mode,
    from: report?.previousRelease,
    to: settings.release || report?.release,
    strategy: settings.strategy,
    result: result ?? (report && report.status !== 'pending' ? report.status : run.outcome.status),
    seconds: (Date.now() - run.started.getTime()) / 1000,
  });
  await remote.exec('append to the audit log', appendAuditCommand(layout, line), { allowFailure: true }).catch(() => undefined);
}

/**
 * mode: unlock — removes each host's deploy lock and says whose it was. A lock whose holder is
 * still alive stays (unless force-unlock), and then the run fails naming that holder.
 */
async function unlockAll(settings: Settings, deps: DeployDependencies, remotes: RemoteHost[], layout: Layout, run: RunRecord): Promise<DeployOutcome> {
  const { outcome } = run;
  const { reporter } = deps;
  const refused: string[] = [];
  try {
    await reporter.group('Unlock', async () => {
      for (const remote of remotes) {
        const result = await unlock(remote, layout, settings.forceUnlock);
        const report: HostReport = { host: remote.name, status: 'unlocked' };
        if (!result.removed && result.reason === 'not-locked') {
          reporter.log(remote.name, `no deploy lock at ${layout.lock}`);
        } else if (result.removed) {
          report.removedLock = describeHolder(result.holder);
          reporter.log(remote.name, `removed the deploy lock of ${describeHolder(result.holder)}`);
          await audit(remote, layout, settings, run, 'unlocked');
        } else {
          report.status = 'failed';
          report.error =
            result.reason === 'alive'
              ? `the lock is held by ${describeHolder(result.holder)}, which is still running; left in place (set force-unlock: true to remove it anyway)`
              : 'another run took the lock while it was being removed; left in place';
          refused.push(`${remote.name}: ${report.error}`);
          reporter.log(remote.name, report.error);
        }
        outcome.hosts.push(report);
      }
    });
    outcome.status = refused.length ? 'failed' : 'unlocked';
    if (refused.length) {
      outcome.error = refused.join('\n');
      throw new DeployFailed(outcome);
    }
    return outcome;
  } finally {
    await Promise.all(remotes.map((remote) => remote.close()));
  }
}

/**
 * What a cancelled run left: each host and the release it serves, for the error and the log.
 * A host is on its new release only when its report says deployed.
 */
function cancelledMessage(outcome: DeployOutcome): string {
  const hosts = outcome.hosts.map((host) => {
    const serves = host.status === 'deployed' ? host.release : host.previousRelease;
    const how = { deployed: 'deployed', 'rolled-back': 'put back', failed: 'FAILED', pending: 'not reached', planned: 'not reached', unlocked: '' }[host.status];
    return `${host.host} serves ${serves ?? '?'} (${how})`;
  });
  return `cancelled by the runner; nothing new was started${hosts.length ? `: ${hosts.join(', ')}` : ''}.`;
}

/** Opens every connection first: a host key problem anywhere stops the deploy before any change. */
async function connectAll(settings: Settings, deps: DeployDependencies): Promise<RemoteHost[]> {
  const remotes: RemoteHost[] = [];
  try {
    for (const target of settings.hosts) {
      remotes.push(await timed(deps, target.label, 'connect', () => deps.connect(target)));
      deps.reporter.log(target.label, settings.ssh.knownHosts === undefined ? 'connected (host key NOT verified)' : 'connected, host key verified');
    }
    return remotes;
  } catch (error) {
    await Promise.all(remotes.map((remote) => remote.close()));
    throw error;
  }
}

/** Reads each host's releases and verifies its server, deciding what goes where. Changes nothing. */
async function inspectAll(settings: Settings, deps: DeployDependencies, remotes: RemoteHost[], layout: Layout): Promise<HostSession[]> {
  const sessions: HostSession[] = [];
  for (const remote of remotes) sessions.push(await timed(deps, remote.name, 'inspect', () => inspectOne(settings, deps, remote, layout)));
  return sessions;
}

async function inspectOne(settings: Settings, deps: DeployDependencies, remote: RemoteHost, layout: Layout): Promise<HostSession> {
  const state = parseReleaseState((await remote.exec('read releases', readStateCommand(layout))).stdout);
  if (!state.current) {
    throw new DeployError(`${layout.current} does not exist: deploy the first release and start the server by hand; the action upgrades a running app.`, remote.name);
  }
  const server = await deps.server.inspect(remote);
  const target = settings.mode === 'rollback' ? rollbackTarget(state, remote.name) : settings.release;
  if (settings.mode === 'deploy' && target === state.current) {
    throw new DeployError(`release ${target} is already current; deploy a new release name, or use mode: rollback to go back.`, remote.name);
  }
  const reading = await probe(remote, server.python, settings.health);
  const versioned = Boolean(reading.version);
  deps.reporter.log(
    remote.name,
    `current ${state.current} (previous ${state.previous ?? 'none'}), master ${server.pid} with workers ${server.workers.join(', ')}; readiness now: ${reading.status} ${reading.version ?? ''}`.trimEnd(),
  );
  return {
    remote,
    state,
    server,
    target,
    leaving: state.current,
    versioned,
    report: { host: remote.name, status: 'pending', release: target, previousRelease: state.current, oldMasterPid: server.pid, oldWorkers: server.workers },
  };
}

function rollbackTarget(state: ReleaseState, host: string): string {
  const previous = state.previous;
  if (!previous || !state.releases.some((release) => release.name === previous)) {
    throw new DeployError(`no previous release to roll back to (the 'previous' link is ${previous ? `${previous}, which is gone` : 'missing'}).`, host);
  }
  return previous;
}

/**
 * Runs migrate-command once, on migrate-host (default the first host), in the new release,
 * after every host is staged and before any reload: old code keeps serving against the new
 * schema until the last host has reloaded, which is why the lint wants expand-only changes.
 */
async function migrateOnce(settings: Settings, deps: DeployDependencies, sessions: HostSession[], layout: Layout, outcome: DeployOutcome): Promise<void> {
  const session = sessions.find((candidate) => candidate.remote.name === settings.migration.host) ?? sessions[0];
  const migrate = deps.migrate;
  if (!session || !migrate) return;
  const { remote, server } = session;
  await deps.reporter.group(`Migrate on ${remote.name}`, async () => {
    try {
      const result = await timed(deps, remote.name, 'migrate', () => migrate(remote, server.python, layout.releaseDir(settings.release), (line) => deps.reporter.log(remote.name, line)));
      outcome.migration = { host: remote.name, ...result };
    } catch (error) {
      if (error instanceof MigrationError && error.progress) {
        outcome.migration = { host: remote.name, skipped: false, ...error.progress, refused: error instanceof MigrationLintError, failed: true };
      }
      throw error;
    }
  });
}

/** Uploads and prepares the release on every host; nothing serving is touched. */
async function stageAll(settings: Settings, deps: DeployDependencies, sessions: HostSession[], layout: Layout, token: string): Promise<void> {
  const { reporter } = deps;
  const packed = settings.source ? await packSource(settings.source) : undefined;
  if (packed?.skipped.length) {
    const shown = packed.skipped.slice(0, 20).join(', ');
    reporter.log('runner', `not shipped (.deployignore and its defaults): ${shown}${packed.skipped.length > 20 ? ` and ${packed.skipped.length - 20} more` : ''}`);
  }
  try {
    for (const session of sessions) {
      const { remote } = session;
      throwIfCancelled(deps.signal, `stage ${settings.release}`, remote.name);
      await reporter.group(`Stage ${settings.release} on ${remote.name}`, () => timed(deps, remote.name, 'stage', async () => {
        await remote.exec('prepare the app directory', prepareLayoutCommand(layout));
        if (packed) {
          const archive = `${layout.releases}/.upload-${settings.release}-${token}.tar.gz`;
          try {
            await remote.upload('upload the release archive', packed.archive, archive);
            reporter.log(remote.name, `uploaded ${packed.bytes} bytes`);
            await remote.exec('unpack the release', unpackReleaseCommand(layout, settings.release, archive, token));
          } catch (error) {
            // Best effort: the upload's own error is the one to report, even if the host is gone.
            await remote.exec('clean up the failed upload', discardIncomingCommand(layout, settings.release, archive, token), { allowFailure: true }).catch(() => undefined);
            throw error;
          }
        } else {
          await remote.exec(`find release ${settings.release} on the host (source is empty, so nothing is uploaded)`, releaseExistsCommand(layout, settings.release));
        }
        if (settings.sharedPaths.length) {
          await remote.exec('link shared paths', linkSharedCommand(layout, settings.release, settings.sharedPaths));
          reporter.log(remote.name, `linked ${settings.sharedPaths.join(', ')} from ${layout.shared}`);
        }
        if (settings.installCommand) {
          throwIfCancelled(deps.signal, 'run the install command', remote.name);
          const result = await remote.exec('install command', installCommand(layout, settings.release, settings.installCommand));
          for (const line of result.stdout.trim().split('\n').slice(-20)) if (line) reporter.log(remote.name, line);
        }
        reporter.log(remote.name, `release staged in ${layout.releaseDir(settings.release)}`);
      }));
    }
  } finally {
    await packed?.dispose();
  }
}

/**
 * Host by host: switch, reload, gate. On a failure with rollback: auto, the failing host and
 * every host done before it go back to what they served, in reverse order. On cancellation
 * only the host in flight is put back (unless its new generation already passed the gate:
 * then it is committed): the runner gives seconds, not minutes, and every host done is
 * consistent already.
 */
async function rollOut(settings: Settings, deps: DeployDependencies, sessions: HostSession[], layout: Layout, token: string, outcome: DeployOutcome): Promise<void> {
  const done: HostSession[] = [];
  for (const session of sessions) {
    let handle: ReloadHandle | undefined;
    let started = false;
    try {
      throwIfCancelled(deps.signal, `switch ${session.remote.name}`);
      started = true;
      await deps.reporter.group(`Reload ${session.remote.name}: ${session.leaving} → ${session.target}`, async () => {
        handle = await switchAndReload(deps, session, layout, token, session.target, session.leaving);
        const reloaded = handle;
        const passed = await timed(deps, session.remote.name, 'gate', () => gate(settings, deps, session, reloaded.master, session.target, deps.signal));
        const committed = await timed(deps, session.remote.name, 'commit', () => reloaded.commit());
        Object.assign(session.report, {
          status: 'deployed',
          newMasterPid: committed.pid,
          newWorkers: committed.workers,
          secondsToReady: round(passed.seconds),
          health: `${passed.reading.status} ${passed.reading.version ?? ''}`.trim(),
        });
      });
      done.push(session);
    } catch (error) {
      const cancelled = deps.signal?.aborted === true;
      if (cancelled && !started) {
        outcome.status = 'cancelled';
        outcome.error = cancelledMessage(outcome);
        throw new DeployFailed(outcome);
      }
      session.report.status = 'failed';
      session.report.error = errorMessage(error);
      outcome.error = session.report.error;
      if (settings.rollback === 'never') {
        deps.reporter.warn(`rollback: never — ${session.remote.name} and ${done.length} host(s) before it are left as they are.`);
        if (cancelled) outcome.status = 'cancelled';
        throw new DeployFailed(outcome);
      }
      const failure = error instanceof ReloadFailure ? error : undefined;
      const inFlight = handle ?? failure?.handle;
      // A host whose connection is gone goes last: the others are put back without waiting on its reconnect attempts.
      const unreachable = error instanceof HostUnreachableError || failure?.hostUnreachable === true;
      // Cancelled: only the host in flight goes back; hosts done are consistent and the runner gives seconds.
      const order = cancelled ? [session] : unreachable ? [...done.reverse(), session] : [session, ...done.reverse()];
      const stranded = await putBack(settings, deps, order, layout, token, { session, inFlight, intact: failure?.previousIntact === true });
      // 'rolled-back' promises every touched host serves the previous release again; say so only when true.
      if (cancelled) outcome.status = stranded.length === 0 ? 'cancelled' : 'failed';
      else outcome.status = stranded.length === 0 ? 'rolled-back' : 'failed';
      if (cancelled) outcome.error = cancelledMessage(outcome);
      if (stranded.length) outcome.error = `${outcome.error ?? ''}\nNOT rolled back — check by hand: ${stranded.map((host) => `${host.host}: ${host.error ?? ''}`).join('; ')}`;
      throw new DeployFailed(outcome);
    }
  }
}

async function switchAndReload(
  deps: DeployDependencies,
  session: HostSession,
  layout: Layout,
  token: string,
  to: string,
  from: string,
): Promise<ReloadHandle> {
  const { remote } = session;
  await timed(deps, remote.name, 'switch', () => remote.exec(`switch current to ${to}`, switchCurrentCommand(layout, to, from, token)));
  deps.reporter.log(remote.name, `current → releases/${to}`);
  return timed(deps, remote.name, 'reload', async (next) =>
    deps.server.reload(remote, await deps.server.inspect(remote), (line) => deps.reporter.log(remote.name, line), deps.signal, reloadSteps(next)),
  );
}

async function gate(settings: Settings, deps: DeployDependencies, session: HostSession, server: ServerProcess, version: string, signal?: AbortSignal) {
  const expect = settings.health.expectVersion === 'always' || (settings.health.expectVersion === 'auto' && session.versioned);
  deps.reporter.log(session.remote.name, `readiness gate: ${redactedUrl(settings.health.url)}${expect ? ` must name ${version}` : ''}`);
  const passed = await waitUntilReady(session.remote, server.python, settings.health, expect ? version : undefined, signal);
  deps.reporter.log(session.remote.name, `ready in ${round(passed.seconds)}s (${passed.reading.status} ${passed.reading.version ?? ''})`.trimEnd());
  return passed;
}

/**
 * Puts each host back on the release it served before this run. The failing host reverts its
 * in-flight reload (e.g. the old USR2 master takes over again), or only switches back when its
 * old generation never stopped serving; hosts already done reload the previous release
 * afresh. Every host is attempted even if one fails; the hosts that could not be put back
 * are returned.
 */
async function putBack(
  settings: Settings,
  deps: DeployDependencies,
  order: HostSession[],
  layout: Layout,
  token: string,
  failing: { session: HostSession; inFlight?: ReloadHandle; intact: boolean },
): Promise<HostReport[]> {
  const stranded: HostReport[] = [];
  for (const session of order) {
    const { remote } = session;
    try {
      await deps.reporter.group(`Roll back ${remote.name}: → ${session.leaving}`, () => timed(deps, remote.name, 'revert', async () => {
        const previous = session.state.previous ?? null;
        await remote.exec(`switch current back to ${session.leaving}`, switchCurrentCommand(layout, session.leaving, previous, token));
        deps.reporter.log(remote.name, `current → releases/${session.leaving}`);
        const own = session === failing.session ? failing : undefined;
        let handle: ReloadHandle | undefined;
        let serving: ServerProcess;
        if (own?.inFlight) {
          serving = await own.inFlight.revert();
        } else if (own?.intact) {
          serving = await deps.server.inspect(remote);
          deps.reporter.log(remote.name, `master ${serving.pid} never stopped serving ${session.leaving}`);
        } else {
          handle = await deps.server.reload(remote, await deps.server.inspect(remote), (line) => deps.reporter.log(remote.name, line));
          serving = handle.master;
        }
        await gate(settings, deps, session, serving, session.leaving);
        const server = handle ? await handle.commit() : serving;
        Object.assign(session.report, { status: 'rolled-back', newMasterPid: server.pid, newWorkers: server.workers, release: session.leaving });
      }));
    } catch (error) {
      session.report.status = 'failed';
      session.report.error = `rollback failed: ${errorMessage(error)}`;
      stranded.push(session.report);
      deps.reporter.warn(`[${remote.name}] rollback to ${session.leaving} failed: ${errorMessage(error)}. Check this host by hand.`);
    }
  }
  return stranded;
}

/**
 * Deletes old releases and what interrupted runs left in releases/. The new release already
 * serves everywhere, so a problem here is a warning: the deploy stays `deployed`.
 */
async function prune(settings: Settings, session: HostSession, layout: Layout, token: string, reporter: Reporter): Promise<void> {
  const { remote } = session;
  try {
    const state = parseReleaseState((await remote.exec('read releases', readStateCommand(layout))).stdout);
    const doomed = releasesToPrune(state, settings.keepReleases, [state.current, state.previous, session.target]);
    const leftovers = leftoversToPrune(state, token);
    if (doomed.length + leftovers.length === 0) return;
    await remote.exec('prune old releases', pruneCommand(layout, [...doomed, ...leftovers]));
    if (doomed.length) reporter.log(remote.name, `pruned ${doomed.join(', ')}`);
    if (leftovers.length) reporter.log(remote.name, `removed what interrupted runs left: ${leftovers.join(', ')}`);
  } catch (error) {
    reporter.warn(`[${remote.name}] pruning old releases failed (the deploy itself succeeded): ${errorMessage(error)}`);
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}
