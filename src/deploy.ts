import { randomBytes } from 'node:crypto';
import { balancerOf } from './balancer/balancer.js';
import type { Settings } from './config/settings.js';
import { DeployError, PreflightError, errorMessage } from './errors.js';
import { throwIfCancelled } from './poll.js';
import { MigrationError, MigrationLintError } from './migrate/index.js';
import { failureOf, isRedirect, probe, redirectMessage, type HealthReading } from './health/readiness-gate.js';
import { layoutOf, type Layout } from './release/layout.js';
import { packSource } from './release/pack-source.js';
import { auditLine } from './release/audit-log.js';
import { acquireLock, describeHolder, ownerText, startHeartbeat, unlock } from './release/deploy-lock.js';
import { runIdentity, type RunIdentity } from './release/run-identity.js';
import { settleHost } from './release/leftover-release.js';
import {
  appendAuditCommand,
  discardIncomingCommand,
  discardStagedReleaseCommand,
  installCommand,
  linkSharedCommand,
  prepareLayoutCommand,
  pruneCommand,
  readStateCommand,
  releaseExistsCommand,
  releaseLockCommand,
  unpackReleaseCommand,
} from './release/release-commands.js';
import { leftoversToPrune, parseReleaseState, releasesToPrune, type ReleaseState } from './release/release-state.js';
import type { RemoteHost } from './remote/remote-host.js';
import { joinFragments, type ShellFragment } from './remote/shell-quote.js';
import type { DeployOutcome, HostReport, Reporter } from './report/reporter.js';
import { cancelledMessage, DeployFailed, timed, type DeployDependencies, type HostSession, type RunContext } from './rollout/deploy-context.js';
import { blameHost } from './report/outcome-text.js';
import { Timeline } from './report/timeline.js';
import { forEachHost, throwFirstFailure } from './rollout/host-tasks.js';
import { rollOut } from './rollout/roll-out.js';
import { describePlan, planRollout } from './rollout/rollout-plan.js';

export { DeployFailed, type DeployDependencies } from './rollout/deploy-context.js';

/**
 * The life of one deploy (or rollback): connect and verify every host, lock, inspect, stage
 * and check the new release on every host (in parallel, up to max-parallel at once), migrate
 * once, then switch and reload batch by batch behind each host's readiness gate (see
 * rollout/roll-out.ts), putting every touched host back when one fails.
 */
export async function deploy(settings: Settings, dependencies: DeployDependencies): Promise<DeployOutcome> {
  const deps = { ...dependencies, timeline: dependencies.timeline ?? new Timeline() };
  const token = deps.token ?? randomBytes(6).toString('hex');
  const started = new Date();
  const identity = deps.identity ?? runIdentity(process.env);
  const layout = layoutOf(settings.appDir);
  const { reporter } = deps;
  const outcome: DeployOutcome = { status: 'failed', release: settings.release, strategy: settings.strategy, hosts: [] };
  const run: RunContext = { settings, deps, layout, token, outcome };

  const remotes = await connectAll(settings, deps);
  // The plan is a function of the hosts input alone: the balancer checks it before any change.
  const batches = planRollout(
    settings.hosts.map((target) => target.label),
    settings.rollout,
  );
  try {
    if (settings.mode !== 'unlock') {
      await reporter.group('Load balancer', () =>
        balancerOf(deps).open(
          settings.hosts,
          deps.signal,
          batches,
        ),
      );
    }
  } catch (error) {
    await Promise.all([...remotes.map((remote) => remote.close()), balancerOf(deps).close([])]);
    throw error;
  }
  const checkpoint = (what: string) => throwIfCancelled(deps.signal, what);
  if (settings.mode === 'unlock') return unlockAll(settings, deps, remotes, layout, { identity, started, outcome });
  const locked: RemoteHost[] = [];
  // Hosts asked for their lock, recorded before the command: a lock whose mkdir took effect but
  // whose answer was lost is still released (the release checks the token) and known to the post step.
  const asked: RemoteHost[] = [];
  const stopHeartbeat = startHeartbeat(() => locked, layout, token);
  try {
    // plan reads only: no lock (it would create app-dir and the lock directory on each host).
    if (settings.mode !== 'plan') {
      await reporter.group('Lock', async () => {
        const owner = ownerText(token, identity, started);
        // One order for every run, so two runs waiting for each other's hosts cannot deadlock.
        for (const remote of [...remotes].sort((a, b) => a.name.localeCompare(b.name))) {
          asked.push(remote);
          deps.progress?.(remote.name, 'locking');
          await timed(deps, remote.name, 'lock', () => acquireLock(remote, layout, owner, { waitSeconds: settings.lockWaitSeconds, log: (line) => reporter.log(remote.name, line), signal: deps.signal }));
          locked.push(remote);
          deps.progress?.(remote.name, 'locked');
          reporter.log(remote.name, 'deploy lock taken');
        }
      });
      // What a run killed with its runner left (two masters, current ahead of the workers, staging leftovers).
      const settled = await forEachHost(
        remotes,
        { limit: settings.rollout.maxParallel, reporter, title: (remote) => `Settle what interrupted runs left on ${remote.name}`, host: (remote) => remote.name, stopOnFailure: true },
        async (remote, hostReporter) => void (await settleHost(remote, layout, token, deps.server, (line) => hostReporter.log(remote.name, line))),
      );
      throwFirstFailure(settled);
    }
    checkpoint('inspect the hosts');
    const sessions = await inspectAll(settings, deps, remotes, layout);
    outcome.hosts = sessions.map((session) => session.report);
    outcome.release = sessions[0]?.target ?? settings.release;
    outcome.previousRelease = sessions[0]?.leaving;
    const batchOf = new Map(batches.flatMap((batch) => batch.hosts.map((name) => [name, batch] as const)));
    for (const session of sessions) {
      const batch = batchOf.get(session.remote.name);
      session.report.batch = batch?.index;
      if (batch?.canary) session.report.canary = true;
    }

    if (settings.mode === 'plan') {
      for (const session of sessions) {
        session.report.status = 'planned';
        if (session.state.lockOwner) reporter.log(session.remote.name, `another run holds the deploy lock now (${session.state.lockOwner}); a deploy would wait for it`);
      }
      outcome.plan = describePlan(batches);
      await reporter.group('Rollout plan', async () => {
        for (const line of outcome.plan ?? []) reporter.log('plan', line);
      });
      outcome.status = 'planned';
      return outcome;
    }
    if (settings.mode === 'migrate') {
      await migrateOnly(run, sessions);
      outcome.status = 'migrated';
      return outcome;
    }
    if (alreadyServing(run, sessions)) return outcome;
    if (settings.mode === 'deploy') {
      await prepareAll(run, sessions);
      checkpoint('migrate');
      if (settings.migration.command && deps.migrate) await migrateOnce(settings, deps, sessions, outcome, layout.releaseDir(settings.release));
    }

    await rollOut(run, sessions, batches);
    await forEachHost(sessions, { limit: settings.rollout.maxParallel, reporter, title: (s) => `Prune old releases on ${s.remote.name}`, host: (s) => s.remote.name, stopOnFailure: false }, (session, hostReporter) =>
      prune(settings, session, layout, token, hostReporter),
    );
    outcome.status = 'deployed';
    return outcome;
  } catch (error) {
    if (error instanceof DeployFailed) throw error;
    outcome.error = errorMessage(error);
    if (error instanceof DeployError && error.host) blameHost(outcome, error.host, outcome.error);
    if (deps.signal?.aborted) {
      outcome.status = 'cancelled';
      outcome.error = `${cancelledMessage(outcome)} (at: ${outcome.error})`;
    }
    throw new DeployFailed(outcome);
  } finally {
    // Where the next rollback goes, as the first host's `previous` link now says.
    if (outcome.hosts[0]) outcome.rollbackTarget = outcome.hosts[0].rollbackTarget;
    for (const host of outcome.hosts) host.timeline = deps.timeline.spans(host.host);
    // Whatever happened, no server this run drained stays out of rotation.
    await balancerOf(deps).close(outcome.hosts);
    stopHeartbeat();
    await Promise.all([
      ...locked.map(async (remote) => {
        // One round trip: the run's line, written while the lock is still held, then the lock.
        const audited = settings.mode === 'plan' ? [] : [auditCommand(remote, layout, settings, { identity, started, outcome })];
        const what = settings.mode === 'plan' ? 'release the deploy lock' : 'append to the audit log and release the deploy lock';
        await remote.exec(what, joinFragments([...audited, releaseLockCommand(layout, token)], '; '), { allowFailure: true }).catch(() => undefined);
      }),
      // No audit line where the lock was never confirmed: the host may be another run's.
      ...asked.filter((remote) => !locked.includes(remote)).map((remote) => remote.exec('release a deploy lock whose answer was lost', releaseLockCommand(layout, token), { allowFailure: true }).catch(() => undefined)),
    ]);
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
  await remote.exec('append to the audit log', auditCommand(remote, layout, settings, run, result), { allowFailure: true }).catch(() => undefined);
}

/** The command appending this run's line for `remote` to the host's deploy.log. */
function auditCommand(remote: RemoteHost, layout: Layout, settings: Settings, run: RunRecord, result?: string): ShellFragment {
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
  return appendAuditCommand(layout, line);
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
 * Opens every connection first (up to max-parallel at once): a host key problem anywhere stops
 * the deploy before any change.
 */
async function connectAll(settings: Settings, deps: DeployDependencies): Promise<RemoteHost[]> {
  const remotes = new Map<string, RemoteHost>();
  const verified = settings.ssh.knownHosts === undefined ? 'connected (host key NOT verified)' : 'connected, host key verified';
  const results = await forEachHost(
    settings.hosts,
    { limit: settings.rollout.maxParallel, reporter: deps.reporter, title: (target) => `Connect to ${target.label}`, host: (target) => target.label, stopOnFailure: true },
    async (target, reporter) => {
      remotes.set(target.label, await timed(deps, target.label, 'connect', () => deps.connect(target)));
      reporter.log(target.label, verified);
    },
  );
  try {
    throwFirstFailure(results);
  } catch (error) {
    await Promise.all([...remotes.values()].map((remote) => remote.close()));
    throw error;
  }
  return settings.hosts.map((target) => remotes.get(target.label)).filter((remote): remote is RemoteHost => remote !== undefined);
}

/** Reads each host's releases and verifies its server, deciding what goes where (in parallel). Changes nothing. */
async function inspectAll(settings: Settings, deps: DeployDependencies, remotes: RemoteHost[], layout: Layout): Promise<HostSession[]> {
  const sessions = new Map<RemoteHost, HostSession>();
  const results = await forEachHost(
    remotes,
    { limit: settings.rollout.maxParallel, reporter: deps.reporter, title: (remote) => `Inspect ${remote.name}`, host: (remote) => remote.name, stopOnFailure: true },
    async (remote, reporter) => {
      sessions.set(remote, await timed(deps, remote.name, 'inspect', () => inspectHost(settings, deps.server, remote, layout, reporter)));
    },
  );
  throwFirstFailure(results);
  return remotes.map((remote) => sessions.get(remote)).filter((session): session is HostSession => session !== undefined);
}

async function inspectHost(settings: Settings, driver: DeployDependencies['server'], remote: RemoteHost, layout: Layout, reporter: Reporter): Promise<HostSession> {
  // Both only read; the master is inspected even where `current` is missing, and that error wins.
  const [read, inspected] = await Promise.allSettled([remote.exec('read releases', readStateCommand(layout)), driver.inspect(remote)]);
  if (read.status === 'rejected') throw read.reason;
  const state = parseReleaseState(read.value.stdout);
  if (!state.current) {
    throw new DeployError(`${layout.current} does not exist: deploy the first release and start the server by hand; the action upgrades a running app.`, remote.name);
  }
  if (inspected.status === 'rejected') throw inspected.reason;
  const server = inspected.value;
  const target = settings.mode === 'rollback' ? rollbackTarget(state, remote.name, settings.release) : settings.release;
  const inPlace = target === state.current;
  if (settings.mode === 'deploy' && !inPlace && settings.source && state.releases.some((release) => release.name === target)) {
    throw new DeployError(
      `${layout.releaseDir(target)} already exists (not current): a deploy never replaces a release on disk. ` +
        `Deploy that copy as it is with source: '' (empty), remove it on the host, or deploy under a new release name.`,
      remote.name,
    );
  }
  // A deploy reads the readiness URL while it stages and checks (prepareAll); the other modes, and a
  // deploy of the release already current (if-current), read it here.
  const reading = settings.mode === 'deploy' && !inPlace ? undefined : await probe(remote, server.python, settings.health);
  reporter.log(remote.name, `current ${state.current} (previous ${state.previous ?? 'none'}), master ${server.pid} with workers ${server.workers.join(', ')}${reading ? `; ${readinessNow(reading)}` : ''}`);
  return {
    remote,
    state,
    server,
    target,
    leaving: state.current,
    previousAfter: inPlace ? undefined : settings.mode === 'rollback' ? releaseBefore(state, target) : state.current,
    inPlace,
    reading,
    versioned: Boolean(reading?.version),
    report: {
      host: remote.name,
      status: 'pending',
      release: target,
      previousRelease: state.current,
      rollbackTarget: state.previous ?? '',
      oldMasterPid: server.pid,
      oldWorkers: server.workers,
    },
  };
}

/**
 * if-current, for deploy and rollback: on hosts where the release is already current. `skip`
 * (the default) ends the run as `unchanged` when every host is current on it and its readiness
 * passes (naming it, when it names a version): a re-run of a deploy that succeeded. `redeploy`
 * goes on, reloading those hosts in place; `fail` stops. Returns true when the run is over.
 * A release current on some hosts only is an error under skip: a re-run cannot tell which
 * release the user wants there.
 */
function alreadyServing(run: RunContext, sessions: HostSession[]): boolean {
  const { settings, deps, outcome } = run;
  if (settings.mode !== 'deploy' && settings.mode !== 'rollback') return false;
  const current = sessions.filter((session) => session.inPlace);
  if (current.length === 0 || settings.ifCurrent === 'redeploy') {
    for (const session of current) deps.reporter.log(session.remote.name, `${session.target} is already current: reloaded in place (if-current: redeploy), nothing is staged`);
    return false;
  }
  const release = current[0]?.target ?? settings.release;
  const names = (list: HostSession[]) => list.map((session) => session.remote.name).join(', ');
  if (settings.ifCurrent === 'fail') {
    throw new DeployError(`release ${release} is already current on ${names(current)} (if-current: fail). Deploy a new release name, or set if-current: skip or redeploy.`);
  }
  const others = sessions.filter((session) => !session.inPlace);
  if (others.length) {
    throw new DeployError(
      `release ${release} is already current on ${names(current)} but not on ${others.map((session) => `${session.remote.name} (on ${session.leaving})`).join(', ')}: ` +
        'a run is skipped only when every host serves it. Set if-current: redeploy to put it on every host (those already on it reload it in place).',
    );
  }
  const expect = settings.health.expectVersion;
  const failing = sessions
    .map((session) => {
      const reading = session.reading;
      const named = expect === 'always' || (expect === 'auto' && Boolean(reading?.version));
      return { session, why: reading ? failureOf(reading, named ? session.target : undefined) : 'not read' };
    })
    .filter((entry) => entry.why !== undefined);
  if (failing.length) {
    throw new DeployError(
      `release ${release} is already current on every host, but ${failing.map((entry) => `${entry.session.remote.name} does not serve it (${entry.why})`).join('; ')}. ` +
        'Set if-current: redeploy to reload it.',
    );
  }
  for (const session of sessions) session.report.status = 'unchanged';
  outcome.status = 'unchanged';
  deps.reporter.log('runner', `release ${release} is already current and serving on every host: nothing to do (if-current: skip)`);
  return true;
}

function readinessNow(reading: HealthReading): string {
  return `readiness now: ${reading.status} ${reading.version ?? ''}`.trimEnd();
}

/**
 * mode: rollback goes to the release named by the release input when there is one (it must still
 * be on the host), else to the host's `previous` link.
 */
function rollbackTarget(state: ReleaseState, host: string, named: string): string {
  if (named) {
    if (!state.releases.some((release) => release.name === named)) {
      const onDisk = state.releases.map((release) => release.name).join(', ') || 'none';
      throw new DeployError(`release ${named} is not on this host, so there is nothing to roll back to. Releases on disk (oldest first): ${onDisk}.`, host);
    }
    return named;
  }
  const previous = state.previous;
  if (!previous || !state.releases.some((release) => release.name === previous)) {
    throw new DeployError(`no previous release to roll back to (the 'previous' link is ${previous ? `${previous}, which is gone` : 'missing'}).`, host);
  }
  return previous;
}

/**
 * What `previous` names after a rollback to `target`: the release staged just before it (the
 * order of releases on disk), or null when there is none. A rollback from v3 to v2 leaves
 * `previous` on v1, so a second rollback goes one release further back, never silently
 * forward again.
 */
export function releaseBefore(state: ReleaseState, target: string): string | null {
  const order = state.releases.map((release) => release.name);
  return order[order.indexOf(target) - 1] ?? null;
}

/**
 * Runs migrate-command once, on migrate-host (default the first host), in the new release,
 * after every host is staged and before any reload: old code keeps serving against the new
 * schema until the last host has reloaded, which is why the lint wants expand-only changes.
 */
async function migrateOnce(settings: Settings, deps: DeployDependencies, sessions: HostSession[], outcome: DeployOutcome, releaseDir: string): Promise<void> {
  const session = migrateSession(settings, sessions);
  const migrate = deps.migrate;
  if (!session || !migrate) return;
  const { remote, server } = session;
  await deps.reporter.group(`Migrate on ${remote.name}`, async () => {
    try {
      const result = await timed(deps, remote.name, 'migrate', () => migrate(remote, server.python, releaseDir, (line) => deps.reporter.log(remote.name, line)));
      outcome.migration = { host: remote.name, ...result };
    } catch (error) {
      if (error instanceof MigrationError && error.progress) {
        outcome.migration = { host: remote.name, skipped: false, ...error.progress, refused: error instanceof MigrationLintError, failed: true };
      }
      throw error;
    }
  });
}

/** The host that runs migrate-command: migrate-host, else the first host. */
function migrateSession(settings: Settings, sessions: HostSession[]): HostSession | undefined {
  return sessions.find((candidate) => candidate.remote.name === settings.migration.host) ?? sessions[0];
}

/**
 * mode: migrate — the gated migration step of a deploy and nothing else: no host switches or
 * reloads. With a source, the release is staged on the migrate host in a scratch directory
 * (releases/.migrate-<release>-<token>: uploaded, shared paths linked, install-command run),
 * migrated from there and removed, so a later deploy of the same release stages it afresh.
 * With source empty, the release already in releases/<release> is used as it is.
 */
async function migrateOnly(run: RunContext, sessions: HostSession[]): Promise<void> {
  const { settings, deps, layout, token, outcome } = run;
  const session = migrateSession(settings, sessions);
  if (!session || !settings.migration.command || !deps.migrate) throw new DeployError('mode: migrate needs migrate-command.');
  const { remote } = session;
  const scratch = settings.source ? `${layout.releases}/.migrate-${settings.release}-${token}` : undefined;
  const packed = settings.source ? await packSource(settings.source) : undefined;
  try {
    if (scratch) {
      await deps.reporter.group(`Stage ${settings.release} on ${remote.name} for the migration`, () =>
        timed(deps, remote.name, 'stage', () => stageHost(run, session, packed, deps.reporter, scratch)),
      );
    } else {
      // The release as it is on the host (it may be serving): nothing is linked or installed in it.
      await remote.exec(`find release ${settings.release} on the host (source is empty, so nothing is uploaded)`, releaseExistsCommand(layout, settings.release));
    }
    await migrateOnce(settings, deps, sessions, outcome, scratch ?? layout.releaseDir(settings.release));
    session.report.status = 'migrated';
    deps.reporter.log(remote.name, 'migrated; no host was switched or reloaded (mode: migrate)');
  } finally {
    await packed?.dispose();
    if (scratch) await remote.exec('remove the scratch copy of the release', pruneCommand(layout, [scratch.slice(layout.releases.length + 1)]), { allowFailure: true }).catch(() => undefined);
  }
}

/**
 * Uploads, installs and checks the release on every host, up to max-parallel at once; nothing
 * serving is touched. The release is packed once. One failure stops every host not yet
 * started, and the deploy, with nothing switched anywhere.
 */
async function prepareAll(run: RunContext, sessions: HostSession[]): Promise<void> {
  const { settings, deps } = run;
  const { reporter } = deps;
  const packed = settings.source ? await packSource(settings.source) : undefined;
  if (packed?.skipped.length) {
    const shown = packed.skipped.slice(0, 20).join(', ');
    reporter.log('runner', `not shipped (.deployignore and its defaults): ${shown}${packed.skipped.length > 20 ? ` and ${packed.skipped.length - 20} more` : ''}`);
  }
  // Hosts where this run unpacked the release (it was not there: inspectHost refuses to replace one).
  const unpacked: HostSession[] = [];
  try {
    const results = await forEachHost(
      sessions,
      { limit: settings.rollout.maxParallel, reporter, title: (s) => `Stage and check ${settings.release} on ${s.remote.name}`, host: (s) => s.remote.name, stopOnFailure: true },
      async (session, hostReporter) => {
        // Whether the running release names its version (expect-version: auto) is read beside the
        // staging and the check. Both end before the host's task does (nothing left running on a
        // connection the run closes), and the check's error is the one reported: it says more.
        const [reading, checked] = await Promise.allSettled([
          probe(session.remote, session.server.python, settings.health),
          (async () => {
            await timed(deps, session.remote.name, 'stage', () => stageHost(run, session, packed, hostReporter));
            if (packed && !session.inPlace) unpacked.push(session);
            throwIfCancelled(deps.signal, `check the new release on ${session.remote.name}`);
            await timed(deps, session.remote.name, 'check', () => deps.server.preflight(session.remote, session.server, run.layout.releaseDir(session.target)));
          })(),
        ]);
        if (checked.status === 'rejected') throw checked.reason;
        if (reading.status === 'rejected') throw reading.reason;
        // The gate would fail on it, and so would the check of a rollback to the running release: a wrong health-url or health-host, said before anything changes.
        if (isRedirect(reading.value)) throw new PreflightError(`the running release: ${redirectMessage(settings.health.url, reading.value)} Nothing was changed.`, session.remote.name);
        session.versioned = Boolean(reading.value.version);
        hostReporter.log(session.remote.name, readinessNow(reading.value));
        const from = session.server.pythonFrom ? ` (found from ${session.server.pythonFrom})` : '';
        hostReporter.log(session.remote.name, `release ${session.target} loads with ${session.server.python}${from}`);
      },
    );
    throwFirstFailure(results);
  } catch (error) {
    await discardStaged(run, unpacked);
    throw error;
  } finally {
    await packed?.dispose();
  }
}

/**
 * After a failed preparation nothing was switched: the copies this run unpacked go, so that the
 * same release can be deployed again once the cause is fixed (a deploy never replaces a release
 * on disk). Best effort, never current or previous; what stays is pruned by a later run.
 */
async function discardStaged(run: RunContext, unpacked: HostSession[]): Promise<void> {
  const { settings, layout, deps } = run;
  await Promise.all(
    unpacked.map(async ({ remote }) => {
      const result = await remote.exec(`remove the staged ${settings.release}`, discardStagedReleaseCommand(layout, settings.release), { allowFailure: true }).catch(() => undefined);
      if (result?.stdout.includes('removed')) deps.reporter.log(remote.name, `removed releases/${settings.release}, staged by this run: nothing was switched`);
    }),
  );
}

/**
 * Puts the release on one host: uploaded and unpacked (or found there when source is empty),
 * shared paths linked, install-command run. Into releases/<release>, or `dir` (mode: migrate's
 * scratch copy). A release already current here (if-current: redeploy) is serving: untouched.
 */
async function stageHost(run: RunContext, session: HostSession, packed: Awaited<ReturnType<typeof packSource>> | undefined, reporter: Reporter, dir?: string): Promise<void> {
  const { settings, deps, layout, token } = run;
  const { remote } = session;
  const target = dir ?? layout.releaseDir(settings.release);
  throwIfCancelled(deps.signal, `stage ${settings.release}`, remote.name);
  if (session.inPlace && dir === undefined) {
    reporter.log(remote.name, `${settings.release} is current here: nothing uploaded, linked or installed (if-current: redeploy)`);
    return;
  }
  await remote.exec('prepare the app directory', prepareLayoutCommand(layout));
  if (packed) {
    const archive = `${layout.releases}/.upload-${settings.release}-${token}.tar.gz`;
    try {
      await remote.upload('upload the release archive', packed.archive, archive);
      reporter.log(remote.name, `uploaded ${packed.bytes} bytes`);
      await remote.exec('unpack the release', unpackReleaseCommand(layout, settings.release, archive, token, target));
    } catch (error) {
      // Best effort: the upload's own error is the one to report, even if the host is gone.
      await remote.exec('clean up the failed upload', discardIncomingCommand(layout, settings.release, archive, token), { allowFailure: true }).catch(() => undefined);
      throw error;
    }
  } else {
    await remote.exec(`find release ${settings.release} on the host (source is empty, so nothing is uploaded)`, releaseExistsCommand(layout, settings.release));
  }
  if (settings.sharedPaths.length) {
    await remote.exec('link shared paths', linkSharedCommand(layout, settings.release, settings.sharedPaths, target));
    reporter.log(remote.name, `linked ${settings.sharedPaths.join(', ')} from ${layout.shared}`);
  }
  if (settings.installCommand) {
    throwIfCancelled(deps.signal, 'run the install command', remote.name);
    const result = await remote.exec('install command', installCommand(layout, settings.release, settings.installCommand, target));
    for (const line of result.stdout.trim().split('\n').slice(-20)) if (line) reporter.log(remote.name, line);
  }
  reporter.log(remote.name, `release staged in ${target}`);
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
