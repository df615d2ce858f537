import { balancerOf } from '../balancer/balancer.js';
import { CancelledError, HealthGateError, HostUnreachableError, errorMessage } from '../errors.js';
import { failureOf, probeBurst, redactedUrl, waitUntilReady } from '../health/readiness-gate.js';
import { sleep, throwIfCancelled } from '../poll.js';
import { switchCurrentCommand } from '../release/release-commands.js';
import type { HostReport, Reporter } from '../report/reporter.js';
import { ReloadFailure, type ReloadHandle, type ServerProcess } from '../servers/server-driver.js';
import { describeSource, readServerLog, serverLogSource } from '../servers/server-log.js';
import { reloadSteps } from '../report/timeline.js';
import { cancelledMessage, DeployFailed, round, timed, type HostSession, type RunContext } from './deploy-context.js';
import { forEachHost, type HostTaskResult } from './host-tasks.js';
import { describePlan, type Batch } from './rollout-plan.js';

/**
 * What went wrong on one host during its reload, with what the put-back needs: the reload in
 * flight (its own revert), or whether the old generation never stopped serving.
 */
class HostFailure extends Error {
  constructor(
    readonly session: HostSession,
    readonly cause: unknown,
    readonly started: boolean,
    readonly inFlight?: ReloadHandle,
    readonly intact = false,
  ) {
    super(errorMessage(cause));
  }
}

/** The host stopped because the run was cancelled (a wait or a step that takes the cancel), not on a failure of its own. */
function cancelledOnly(failure: HostFailure): boolean {
  return failure.cause instanceof CancelledError || (failure.cause instanceof ReloadFailure && failure.cause.cancelled);
}

/**
 * Batch by batch (see rollout-plan.ts), each batch's hosts in parallel, each behind its own
 * readiness gate and committed as soon as it passes. The canary batch is then held for
 * canary-wait seconds of passing probes. On a failure with rollback: auto, the failing hosts
 * and every host already on the new release go back, in parallel — unless max-failed-hosts
 * allows it, and then only the failing host goes back and the rollout goes on. On
 * cancellation no new batch starts; each host in flight is committed if it passed its gate,
 * put back otherwise, and hosts done stay done (the runner gives seconds, not minutes) — unless
 * a host failed on its own as the cancel came: the release is bad, and they go back as above.
 */
export async function rollOut(run: RunContext, sessions: HostSession[], batches: Batch[]): Promise<void> {
  const { settings, deps, outcome } = run;
  const { reporter } = deps;
  const byName = new Map(sessions.map((session) => [session.remote.name, session]));
  const done: HostSession[] = [];
  const setAside: HostSession[] = [];
  const widest = Math.max(1, ...batches.map((batch) => batch.hosts.length));
  const plan = describePlan(batches);
  for (const batch of batches) {
    const members = batch.hosts.map((name) => byName.get(name)).filter((session): session is HostSession => session !== undefined);
    if (batch.index > 0 && settings.rollout.batchWaitSeconds > 0 && !deps.signal?.aborted) {
      reporter.log('runner', `waiting ${settings.rollout.batchWaitSeconds}s (batch-wait) before the next batch`);
      const wait = sleep(settings.rollout.batchWaitSeconds * 1000, deps.signal);
      await Promise.all(members.map((session) => timed(deps, session.remote.name, 'batch-wait', () => wait)));
    }
    if (deps.signal?.aborted) {
      outcome.status = 'cancelled';
      outcome.error = cancelledMessage(outcome);
      throw new DeployFailed(outcome);
    }
    if (batches.length > 1) reporter.log('runner', `${plan[batch.index] ?? ''}`);
    const results = await forEachHost(
      members,
      { limit: members.length, reporter, title: (s) => `Reload ${s.remote.name}: ${s.leaving} → ${s.target}`, host: (s) => s.remote.name, stopOnFailure: false },
      (session, hostReporter) => reloadHost(run, session, hostReporter, batch.canary),
    );
    let failures = hostFailures(results);
    if (failures.length === 0 && batch.canary && settings.rollout.canaryWaitSeconds > 0) failures = await holdCanary(run, members);
    const failed = new Set(failures.map((failure) => failure.session));
    done.push(...members.filter((session) => !failed.has(session)));
    if (failures.length === 0) continue;

    const cancelled = deps.signal?.aborted === true;
    const toPutBack = failures.filter((failure) => failure.started);
    // A host that failed before its switch (its drain refused, the balancer out of reach) changed
    // nothing but did not deploy: it failed, unless a cancel stopped it (then it was not reached).
    const failedHosts = cancelled ? toPutBack : failures;
    for (const failure of failedHosts) Object.assign(failure.session.report, { status: 'failed', error: failure.message });
    outcome.error = failedHosts.map((failure) => (failures.length > 1 ? `${failure.session.remote.name}: ${failure.message}` : failure.message)).join('\n') || outcome.error;
    if (settings.rollback === 'never') {
      reporter.warn(`rollback: never — ${failures.map((failure) => failure.session.remote.name).join(', ')} and ${done.length} host(s) deployed before are left as they are.`);
      if (cancelled) outcome.status = 'cancelled';
      throw new DeployFailed(outcome);
    }
    const allowed = settings.rollout.maxFailedHosts;
    if (cancelled) {
      // A host that failed on its own (its gate) as the cancel came condemns the release as it
      // would without the cancel: the hosts already on it go back too, unless max-failed-hosts
      // sets the failing host aside. Then no host is left on the new release: a rollback, whose
      // cause is the failure, not the cancel.
      const own = failures.filter((failure) => !cancelledOnly(failure));
      const setsAside = !batch.canary && setAside.length + own.length <= allowed;
      const alsoDone = own.length > 0 && !setsAside ? done : [];
      const stranded = await putBack(run, toPutBack, alsoDone, widest);
      if (stranded.length === 0 && own.length > 0 && done.length === alsoDone.length) {
        outcome.status = 'rolled-back';
        throw new DeployFailed(outcome);
      }
      outcome.status = stranded.length === 0 ? 'cancelled' : 'failed';
      outcome.error = cancelledMessage(outcome) + strandedText(stranded);
      throw new DeployFailed(outcome);
    }
    if (!batch.canary && setAside.length + failedHosts.length <= allowed) {
      const stranded = await putBack(run, toPutBack, [], widest);
      setAside.push(...failedHosts.map((failure) => failure.session));
      reporter.warn(
        `${failedHosts.map((failure) => failure.session.remote.name).join(', ')} failed and went back to the previous release alone; the rollout goes on (max-failed-hosts: ${allowed}, ${setAside.length} used).`,
      );
      if (stranded.length) {
        outcome.status = 'failed';
        outcome.error = `${outcome.error ?? ''}${strandedText(stranded)}`;
        throw new DeployFailed(outcome);
      }
      continue;
    }
    if (allowed > 0 && batch.canary) reporter.log('runner', 'a canary failed: max-failed-hosts does not apply to the canary, so every touched host goes back');
    const stranded = await putBack(run, toPutBack, done, widest);
    // 'rolled-back' promises every touched host serves the previous release again; say so only when true.
    outcome.status = stranded.length === 0 ? 'rolled-back' : 'failed';
    outcome.error = `${outcome.error ?? ''}${strandedText(stranded)}`;
    throw new DeployFailed(outcome);
  }
  if (setAside.length) outcome.error = `${setAside.map((session) => `${session.remote.name}: ${session.report.error ?? ''}`).join('\n')}`;
  // Every host went back alone (max-failed-hosts): the release reached none, whatever the allowance.
  if (done.length === 0 && setAside.length > 0) {
    outcome.status = 'rolled-back';
    outcome.error = `no host reached ${sessions[0]?.target ?? 'the new release'}: every host failed and went back to the previous release (max-failed-hosts: ${settings.rollout.maxFailedHosts}).\n${outcome.error ?? ''}`;
    throw new DeployFailed(outcome);
  }
}

/** What the batch's hosts threw: anything not a HostFailure is one too, of a host that may have been switched. */
function hostFailures(results: readonly HostTaskResult<HostSession>[]): HostFailure[] {
  return results.flatMap((result) => (result.error === undefined ? [] : [result.error instanceof HostFailure ? result.error : new HostFailure(result.item, result.error, true)]));
}

function strandedText(stranded: HostReport[]): string {
  return stranded.length ? `\nNOT rolled back — check by hand: ${stranded.map((host) => `${host.host}: ${host.error ?? ''}`).join('; ')}` : '';
}

/** Switch, reload, gate, commit one host; any failure comes out as a HostFailure saying what to undo. */
async function reloadHost(run: RunContext, session: HostSession, reporter: Reporter, canary: boolean): Promise<void> {
  const { deps } = run;
  let handle: ReloadHandle | undefined;
  let started = false;
  try {
    throwIfCancelled(deps.signal, `switch ${session.remote.name}`);
    deps.progress?.(session.remote.name, 'reloading');
    const balancer = balancerOf(deps);
    // Drained (when the strategy stalls requests) from before the switch until the gate passed.
    // A drain wait that ends on a cancel (or a balancer that fails) before the work leaves the
    // host as it was: not started, nothing to put back.
    const name = session.remote.name;
    const { reloaded, passed } = await balancer.around(name, async () => {
      throwIfCancelled(deps.signal, `switch ${name}`);
      started = true;
      const reloaded = await switchAndReload(run, session, reporter);
      handle = reloaded;
      return { reloaded, passed: await timed(deps, name, 'gate', () => gate(run, session, reporter, reloaded.master, session.target, deps.signal)) };
    }, { canary });
    // Real traffic through the balancer, before the commit: a failure still has the revert in hand.
    await balancer.trafficCheck([name]);
    const committed = await timed(deps, name, 'commit', () => reloaded.commit());
    Object.assign(session.report, {
      status: 'deployed',
      rollbackTarget: (session.previousAfter === undefined ? session.state.previous : session.previousAfter) ?? '',
      newMasterPid: committed.pid,
      newWorkers: committed.workers,
      secondsToReady: round(passed.seconds),
      health: `${passed.reading.status} ${passed.reading.version ?? ''}`.trim(),
    });
    deps.progress?.(session.remote.name, 'done');
  } catch (error) {
    const failure = error instanceof ReloadFailure ? error : undefined;
    // Read before anything is put back: the lines that say why (a worker's traceback) are the last ones.
    if (started && !deps.signal?.aborted) await keepServerLog(run, session, reporter);
    throw new HostFailure(session, error, started, handle ?? failure?.handle, failure?.previousIntact === true);
  }
}

/** The last lines of the server's log of a host that failed, into its report and the log. */
async function keepServerLog(run: RunContext, session: HostSession, reporter: Reporter): Promise<void> {
  const source = serverLogSource(run.settings);
  if (!source) return;
  const lines = await readServerLog(session.remote, source, run.settings.become);
  session.report.serverLog = { source: describeSource(source), lines };
  reporter.log(session.remote.name, `last lines of ${describeSource(source)}:\n${lines}`);
}

/**
 * canary-wait: the canary hosts, already committed, must keep passing the readiness probe
 * (and name the new version when the gate expects it) at every health-interval for the
 * whole wait; one failing answer fails the canary. Cancellation ends the wait early: the
 * canary is consistent, and no further batch starts.
 */
async function holdCanary(run: RunContext, canaries: HostSession[]): Promise<HostFailure[]> {
  const { settings, deps } = run;
  const seconds = settings.rollout.canaryWaitSeconds;
  const until = Date.now() + seconds * 1000;
  deps.reporter.log('runner', `holding the canary (${canaries.map((session) => session.remote.name).join(', ')}) for ${seconds}s of passing readiness probes (canary-wait)`);
  const held = timedWait(run, canaries, 'canary-wait');
  try {
    return await probeCanaries(run, canaries, until, seconds);
  } finally {
    held.end();
  }
}

/** Records a wait that spans several hosts on each host's timeline. */
function timedWait(run: RunContext, sessions: HostSession[], phase: 'canary-wait'): { end(): void } {
  let end: () => void = () => undefined;
  const over = new Promise<void>((resolve) => (end = resolve));
  for (const session of sessions) void timed(run.deps, session.remote.name, phase, () => over);
  return { end };
}

/**
 * Readings per probe process during canary-wait: a failing answer is seen at most this many
 * health-intervals late (0.8 s at the default 0.1 s), while a long wait costs the canary one
 * Python start per burst, not one per reading.
 */
const CANARY_BURST = 8;

async function probeCanaries(run: RunContext, canaries: HostSession[], until: number, seconds: number): Promise<HostFailure[]> {
  const { settings, deps } = run;
  while (Date.now() < until && !deps.signal?.aborted) {
    await sleep(Math.min(settings.health.intervalSeconds * 1000, Math.max(0, until - Date.now())), deps.signal);
    if (deps.signal?.aborted) break;
    // The readings up to the wait's end, in bursts of at most CANARY_BURST (one Python start each).
    const count = Math.max(1, Math.min(CANARY_BURST, Math.floor((until - Date.now()) / (settings.health.intervalSeconds * 1000)) + 1));
    const failures = await Promise.all(
      canaries.map(async (session): Promise<HostFailure | undefined> => {
        const expected = expectsVersion(run, session) ? session.target : undefined;
        try {
          const readings = await probeBurst(session.remote, session.server.python, settings.health, count);
          const why = readings.map((reading) => failureOf(reading, expected)).find((failure) => failure !== undefined);
          if (!why) return undefined;
          return new HostFailure(session, new HealthGateError(`canary stopped passing its readiness probe during canary-wait: ${why}`, session.remote.name), true);
        } catch (error) {
          return new HostFailure(session, error, true);
        }
      }),
    );
    const failed = failures.filter((failure): failure is HostFailure => failure !== undefined);
    if (failed.length) return failed;
  }
  if (!deps.signal?.aborted) deps.reporter.log('runner', `the canary passed ${seconds}s of readiness probes`);
  return [];
}

async function switchAndReload(run: RunContext, session: HostSession, reporter: Reporter): Promise<ReloadHandle> {
  const { remote, target: to, previousAfter } = session;
  const { deps, layout, token } = run;
  // The master is verified again while `current` moves (the signal re-checks its start time anyway).
  const inspected = deps.server.inspect(remote);
  // Handled from the start: it may fail before the switch ends, and Node exits on a rejection
  // left without a handler meanwhile. It is awaited below, where its error counts.
  inspected.catch(() => undefined);
  try {
    await timed(deps, remote.name, 'switch', () => remote.exec(`switch current to ${to}`, switchCurrentCommand(layout, to, previousAfter, token)));
  } catch (error) {
    // Nothing is left running on the host's connection when the switch fails.
    await inspected.catch(() => undefined);
    throw error;
  }
  reporter.log(remote.name, `current → releases/${to}; ${previousText(previousAfter, session.state.previous)}`);
  return timed(deps, remote.name, 'reload', async (next) => deps.server.reload(remote, await inspected, (line) => reporter.log(remote.name, line), deps.signal, reloadSteps(next)));
}

/** What happened to the `previous` link, for the log: where the next `mode: rollback` goes. */
function previousText(after: string | null | undefined, before: string | undefined): string {
  if (after === null) return 'previous link removed (no older release on disk: a mode: rollback now needs a release name)';
  const now = after ?? before;
  return now ? `previous → releases/${now} (where mode: rollback now goes)` : 'no previous link';
}

function expectsVersion(run: RunContext, session: HostSession): boolean {
  const expect = run.settings.health.expectVersion;
  return expect === 'always' || (expect === 'auto' && session.versioned);
}

async function gate(run: RunContext, session: HostSession, reporter: Reporter, server: ServerProcess, version: string, signal?: AbortSignal) {
  const { settings } = run;
  const expect = expectsVersion(run, session);
  reporter.log(session.remote.name, `readiness gate: ${redactedUrl(settings.health.url)}${expect ? ` must name ${version}` : ''}`);
  const passed = await waitUntilReady(session.remote, server.python, settings.health, expect ? version : undefined, signal);
  reporter.log(session.remote.name, `ready in ${round(passed.seconds)}s (${passed.reading.status} ${passed.reading.version ?? ''})`.trimEnd());
  return passed;
}

/**
 * Puts hosts back on the release each served before this run, in parallel (at most as many at
 * once as the widest batch, the concurrency the plan already accepted). A failing host reverts
 * its in-flight reload (e.g. the old USR2 master takes over again), or only switches back when
 * its old generation never stopped serving; hosts already committed reload the previous
 * release afresh. Every host is attempted even if one fails; those that could not be put back
 * are returned. Nothing takes the run's cancellation: putting back runs to its end.
 */
async function putBack(run: RunContext, failures: HostFailure[], committed: HostSession[], limit: number): Promise<HostReport[]> {
  const { deps } = run;
  const own = new Map(failures.map((failure) => [failure.session, failure]));
  // A host whose connection is gone goes last: the others are not kept waiting on its reconnect attempts.
  const unreachable = (failure: HostFailure) => failure.cause instanceof HostUnreachableError || (failure.cause instanceof ReloadFailure && failure.cause.hostUnreachable);
  const order = [
    ...failures.filter((failure) => !unreachable(failure)).map((failure) => failure.session),
    ...committed,
    ...failures.filter(unreachable).map((failure) => failure.session),
  ];
  const stranded: HostReport[] = [];
  await forEachHost(
    order,
    { limit, reporter: deps.reporter, title: (s) => `Roll back ${s.remote.name}: → ${s.leaving}`, host: (s) => s.remote.name, stopOnFailure: false },
    async (session, reporter) => {
      try {
        await putBackHost(run, session, reporter, own.get(session));
      } catch (error) {
        session.report.status = 'failed';
        session.report.error = `rollback failed: ${errorMessage(error)}`;
        stranded.push(session.report);
        deps.reporter.warn(`[${session.remote.name}] rollback to ${session.leaving} failed: ${errorMessage(error)}. Check this host by hand.`);
      }
    },
  );
  return stranded;
}

async function putBackHost(run: RunContext, session: HostSession, reporter: Reporter, failure?: HostFailure): Promise<void> {
  await timed(run.deps, session.remote.name, 'revert', () => balancerOf(run.deps).around(session.remote.name, () => putBackBehindBalancer(run, session, reporter, failure), { putBack: true }));
}

async function putBackBehindBalancer(run: RunContext, session: HostSession, reporter: Reporter, failure?: HostFailure): Promise<void> {
  const { deps, layout, token } = run;
  const { remote } = session;
  const previous = session.state.previous ?? null;
  await remote.exec(`switch current back to ${session.leaving}`, switchCurrentCommand(layout, session.leaving, previous, token));
  reporter.log(remote.name, `current → releases/${session.leaving}`);
  let handle: ReloadHandle | undefined;
  let serving: ServerProcess;
  if (failure?.inFlight) {
    serving = await failure.inFlight.revert();
  } else if (failure?.intact) {
    serving = await deps.server.inspect(remote);
    reporter.log(remote.name, `master ${serving.pid} never stopped serving ${session.leaving}`);
  } else {
    handle = await deps.server.reload(remote, await deps.server.inspect(remote), (line) => reporter.log(remote.name, line));
    serving = handle.master;
  }
  await gate(run, session, reporter, serving, session.leaving);
  const server = handle ? await handle.commit() : serving;
  deps.progress?.(remote.name, 'done');
  Object.assign(session.report, { status: 'rolled-back', newMasterPid: server.pid, newWorkers: server.workers, release: session.leaving, rollbackTarget: previous ?? '' });
}
