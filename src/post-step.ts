import * as core from '@actions/core';
import { guardRejections } from './rejection-guard.js';
import { AdminSocket } from './balancer/haproxy/admin-socket.js';
import { describeHeld, holdsAnything, parseHeld, restoreCommands, restoreHeld, type HeldServers } from './balancer/haproxy/held-servers.js';
import { Inputs, State } from './config/input-names.js';
import { parseSettings } from './config/input-helper.js';
import type { BalancerSettings, HostTarget, Settings } from './config/settings.js';
import { errorMessage } from './errors.js';
import { serverDriver } from './main.js';
import { acquireLock, describeHolder, ownerText, parseLockHolder, startHeartbeat } from './release/deploy-lock.js';
import { layoutOf, type Layout } from './release/layout.js';
import { settleHost } from './release/leftover-release.js';
import { auditLine } from './release/audit-log.js';
import { appendAuditCommand, readLockCommand, releaseLockCommand } from './release/release-commands.js';
import { runIdentity } from './release/run-identity.js';
import type { RemoteHost } from './remote/remote-host.js';
import { sshRemoteHostFactory, type RemoteHostFactory } from './remote/ssh-remote-host.js';
import { actionReporter } from './report/action-reporter.js';
import { writePostSummary, type PostHost } from './report/job-summary.js';

/** The main step's record, as saved with core.saveState. */
export interface MainRecord {
  finished: boolean;
  token?: string;
  phases: Record<string, string>;
}

export function readMainRecord(get: (name: string) => string): MainRecord {
  let phases: Record<string, string> = {};
  try {
    phases = JSON.parse(get(State.Phases) || '{}') as Record<string, string>;
  } catch {
    phases = {};
  }
  return { finished: get(State.Finished) === 'true', token: get(State.Token) || undefined, phases };
}

/**
 * The hosts the post step must visit: those the main step locked, unless it finished on its own
 * (then its own cleanup ran: nothing to do). Returns a reason instead when there is nothing.
 */
export function postTargets(record: MainRecord, hosts: HostTarget[]): HostTarget[] | string {
  const idle = idleReason(record);
  if (idle) return idle;
  const touched = hosts.filter((host) => record.phases[host.label] !== undefined);
  return touched.length ? touched : 'the main step locked no host; nothing to do.';
}

/** Why the post step has nothing to do whatever the hosts, if so. */
function idleReason(record: MainRecord): string | undefined {
  if (record.finished) return 'the main step finished on its own (its cleanup ran); nothing to do.';
  if (!record.token) return 'the main step took no deploy lock; nothing to do.';
  return undefined;
}

/**
 * The post step (`runs.post`, run even when the job was cancelled or the main step was killed):
 * when the main step did not finish on its own, reconnects to every host it locked, settles each
 * one to a single consistent release (leftover-release.ts), releases the locks it owns, and
 * reports in the job summary. A no-op after a clean run. Never throws.
 */
export async function runPost(): Promise<void> {
  // A rejection no code handled would exit node before the hosts, the locks and HAProxy are put
  // back: it is named, the post step goes on, and the step fails at its end.
  const named = (fault: Error) => core.error(`graceful-deploy post: an error no code path handled: ${errorMessage(fault)}; putting things back goes on.`);
  const guard = guardRejections(named, named);
  try {
    const record = readMainRecord((name) => core.getState(name));
    const held = parseHeld(core.getState(State.LbHeld));
    // Inputs are read only when there is work: after a clean run the post step touches nothing.
    const idle = idleReason(record);
    if (idle && !holdsAnything(held)) {
      core.info(`graceful-deploy post: ${idle}`);
      return;
    }
    const settings = parseSettings((name) => core.getInput(name), process.env);
    const problems: string[] = [];
    const targets = idle ?? postTargets(record, settings.hosts);
    if (typeof targets === 'string') {
      core.info(`graceful-deploy post: ${targets}`);
    } else {
      core.warning(`graceful-deploy post: the main step did not finish (killed or cancelled past its budget); putting ${targets.map((host) => host.label).join(', ')} in order.`);
      const results = await core.group('Post: settle the hosts the main step left', () => postAll(settings, targets, record));
      if (process.env.GITHUB_STEP_SUMMARY) await writePostSummary(results).catch((error: unknown) => core.warning(`could not write the job summary: ${errorMessage(error)}`));
      problems.push(...results.filter((result) => result.failed).map((result) => `${result.host}: ${result.result}`));
    }
    // After the hosts: HAProxy's own check keeps traffic off a host that does not answer.
    if (holdsAnything(held)) {
      const log = (line: string) => actionReporter.log(settings.balancer?.host.label ?? 'lb', line);
      const left = await core.group('Post: put back what the main step left changed in HAProxy', () =>
        restoreBalancer(settings.balancer, held, sshRemoteHostFactory(settings.ssh, (host, line) => actionReporter.log(host, line)), log),
      );
      problems.push(...left);
    }
    if (problems.length) core.setFailed(`graceful-deploy post: ${problems.join('; ')}`);
  } catch (error) {
    core.setFailed(`graceful-deploy post step stopped on an error: ${errorMessage(error)}`);
  } finally {
    guard.dispose();
    if (guard.fault) core.setFailed(`graceful-deploy post: an error no code path handled: ${errorMessage(guard.fault)}`);
  }
}

async function postAll(settings: Settings, targets: HostTarget[], record: MainRecord): Promise<PostHost[]> {
  const token = record.token ?? '';
  const layout = layoutOf(settings.appDir);
  const connect = sshRemoteHostFactory(settings.ssh, (host, line) => actionReporter.log(host, line));
  const server = serverDriver(settings);
  const locked: RemoteHost[] = [];
  const stopHeartbeat = startHeartbeat(() => locked, layout, token);
  const results: PostHost[] = [];
  const started = new Date();
  try {
    for (const target of targets) {
      const phase = record.phases[target.label] ?? 'unknown';
      const log = (line: string) => actionReporter.log(target.label, line);
      let remote: RemoteHost | undefined;
      try {
        remote = await connect(target);
        const held = await holdLock(remote, layout, token, phase, log);
        if (held !== 'held') {
          const result = held === 'other' ? 'another run holds the lock now: left to it' : 'the main step asked for the lock here and never got it: nothing to do';
          results.push({ host: target.label, phase, result, failed: false });
          continue;
        }
        locked.push(remote);
        const settled = await settleHost(remote, layout, token, server, log);
        const result = settled.repaired ? `settled (was: ${settled.found}); serves ${settled.serves ?? 'one release'}` : `already consistent (${settled.found})`;
        log(result);
        results.push({ host: target.label, phase, result, failed: false });
        await audit(remote, settings, layout, started, settled.repaired ? `interrupted:settled${settled.serves ? `:serves-${settled.serves}` : ''}` : 'interrupted:consistent');
      } catch (error) {
        const message = errorMessage(error).replace(`[${target.label}] `, '');
        log(`could not be settled: ${message}`);
        results.push({ host: target.label, phase, result: message, failed: true });
        if (remote && locked.includes(remote)) await audit(remote, settings, layout, started, 'interrupted:not-settled');
      } finally {
        if (remote) {
          // Out of the heartbeat's list first: a heartbeat on a closed connection reconnects it, and node never exits.
          if (locked.includes(remote)) locked.splice(locked.indexOf(remote), 1);
          await remote.exec('release the deploy lock', releaseLockCommand(layout, token), { allowFailure: true }).catch(() => undefined);
          await remote.close();
        }
      }
    }
  } finally {
    stopHeartbeat();
  }
  return results;
}

/**
 * Sets back to ready and full weight the servers the main step drained or lowered and did not
 * put back (it was killed, or HAProxy was out of its reach). Returns what could not be done, each with the command to run by
 * hand. Never throws.
 */
export async function restoreBalancer(lb: BalancerSettings | undefined, held: HeldServers, connect: RemoteHostFactory, log: (line: string) => void): Promise<string[]> {
  const servers = describeHeld(held);
  const byHand = restoreCommands(held).map(({ command }) => `'${command}'`).join(', ');
  if (!lb) return [`the main step left ${servers} in HAProxy, but ${Inputs.Lb} is empty now: run ${byHand} on HAProxy's admin socket.`];
  let remote: RemoteHost | undefined;
  try {
    remote = await connect(lb.host);
    const { restored, warnings } = await restoreHeld(new AdminSocket(remote, lb.socket, log), held);
    for (const { line } of restored) log(line);
    return warnings.map(({ line }) => line);
  } catch (error) {
    return [`could not reach HAProxy on ${lb.host.label} to put back ${servers} (${errorMessage(error)}): run ${byHand} on HAProxy's admin socket.`];
  } finally {
    await remote?.close().catch(() => undefined);
  }
}

/**
 * The run's line in the host's deploy.log, which the killed main step never wrote: the release
 * it was deploying, and what the post step found and left (`interrupted:settled:serves-v1`,
 * `interrupted:consistent`, `interrupted:not-settled`); `seconds` is the post step's own work.
 */
async function audit(remote: RemoteHost, settings: Settings, layout: Layout, started: Date, result: string): Promise<void> {
  const line = auditLine({
    time: new Date(),
    identity: runIdentity(process.env),
    mode: settings.mode,
    to: settings.release || undefined,
    strategy: settings.strategy,
    result,
    seconds: (Date.now() - started.getTime()) / 1000,
  });
  await remote.exec('append to the audit log', appendAuditCommand(layout, line), { allowFailure: true }).catch(() => undefined);
}

/**
 * What the post step does about a host's lock, from `readLockCommand`'s answer and the phase the
 * main step recorded: `ours` (it still holds it), `other` (another run's: hands off), `take`
 * (gone: take it again), or `never-taken` (the main step asked for it, recorded before the
 * command, and no lock is there: it changed nothing on this host).
 */
export function postLockDecision(read: string, token: string, phase: string): 'ours' | 'other' | 'take' | 'never-taken' {
  if (read.includes('locked=yes')) return parseLockHolder(read).token === token ? 'ours' : 'other';
  return phase === 'locking' ? 'never-taken' : 'take';
}

/**
 * Makes sure this run holds the host's lock: it still does when the main step was killed; when
 * the lock is gone it is taken again (lock-wait 0), so no other run changes the host meanwhile.
 */
async function holdLock(remote: RemoteHost, layout: Layout, token: string, phase: string, log: (line: string) => void): Promise<'held' | 'other' | 'never-taken'> {
  const read = (await remote.exec('read the deploy lock', readLockCommand(layout))).stdout;
  const decision = postLockDecision(read, token, phase);
  if (decision === 'other') log(`the deploy lock is held by ${describeHolder(parseLockHolder(read))}, not by this run: not touching the host`);
  if (decision === 'other' || decision === 'never-taken') return decision;
  if (decision === 'take') await acquireLock(remote, layout, ownerText(token, runIdentity(process.env), new Date()), { waitSeconds: 0, log });
  return 'held';
}
