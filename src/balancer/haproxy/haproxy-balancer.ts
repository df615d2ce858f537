import type { BalancerSettings, HostTarget } from '../../config/settings.js';
import { DeployError, errorMessage } from '../../errors.js';
import { pollUntil, sleep, throwIfCancelled } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import type { RemoteHostFactory } from '../../remote/ssh-remote-host.js';
import type { HostReport } from '../../report/reporter.js';
import type { AroundOptions, Balancer, PlannedBatch } from '../balancer.js';
import { mapHostsToServers } from '../server-map.js';
import { judgeTraffic, type TrafficVerdict } from '../traffic-gate.js';
import { AdminSocket, BalancerError } from './admin-socket.js';
import { restoreHeld, type HeldServers } from './held-servers.js';
import { parseServersState, parseShowStat, takesTraffic, type ServerStat } from './stat-csv.js';

/** Real traffic on the new release failed more (or slower) than on the old one. */
export class TrafficGateError extends DeployError {}

const POLL_MS = 250;
/** On a cancelled run a put-back waits at most this long for its drain: the runner kills the step seconds after the cancel. */
const CANCELLED_DRAIN_WAIT_MS = 2000;
/**
 * The traffic gate reads HAProxy's counters this often during its window (one `show stat`
 * over the open SSH connection): a release failing every request is seen within a quarter of
 * a second of the errors that decide it.
 */
const GATE_READING_MS = 250;

export interface HaproxyBalancerOptions {
  settings: BalancerSettings;
  /** Whether this run's strategy drains (drain-policy.ts). */
  drain: boolean;
  connect: RemoteHostFactory;
  /** Bound on the wait for HAProxy's own check to say UP after ready (seconds). */
  upTimeoutSeconds: number;
  log: (line: string) => void;
  /** What the run must see (a server that may stay drained); default: log. */
  warn?: (line: string) => void;
  signal?: AbortSignal;
  /** Hears every change of what this run holds on HAProxy (saved for the post step). */
  remember?: (held: HeldServers) => void;
}

interface ServerRecord {
  server: string;
  drainedAt?: number;
  drainedSeconds?: number;
  sessionsAtDrain?: number;
  errorsDuringReload?: number;
  traffic?: string;
  /** Why the server may still be out of rotation after this run. */
  leftDrained?: string;
  /** lb-canary-weight, for a canary's server: the weight it takes while the traffic gate watches it, and its configured one. */
  canaryWeight?: { lowered: number; configured: number };
}

/** The balancer behind `lb: haproxy`: HAProxy 2.6's runtime API on its admin socket, over SSH to the LB host. */
export class HaproxyBalancer implements Balancer {
  private remote: RemoteHost | undefined;
  private admin: AdminSocket | undefined;
  private readonly records = new Map<string, ServerRecord>();
  /** Servers this run set to drain and has not set ready again: close() restores them whatever happened. */
  private readonly drained = new Set<string>();
  /** Servers this run set below their configured weight (a canary) and has not set back. */
  private readonly lowered = new Set<string>();

  constructor(private readonly options: HaproxyBalancerOptions) {}

  private get backend(): string {
    return this.options.settings.backend;
  }

  async open(hosts: readonly HostTarget[], _signal?: AbortSignal, batches: readonly PlannedBatch[] = hosts.map((host) => ({ hosts: [host.label], canary: false }))): Promise<void> {
    const { settings, log } = this.options;
    this.remote = await this.options.connect(settings.host);
    this.admin = new AdminSocket(this.remote, settings.socket, log);
    const answer = await this.admin.send(`show servers state ${this.backend}`);
    if (/can't find backend|no such backend/i.test(answer)) throw new BalancerError(`HAProxy has no backend '${this.backend}' (lb-backend).`, this.remote.name);
    const mapping = mapHostsToServers(hosts, this.backend, parseServersState(answer), settings.servers);
    if (mapping.problems.length) throw new BalancerError(`cannot tell which HAProxy server each host is: ${mapping.problems.join('; ')}. Nothing was changed.`, this.remote.name);
    for (const [host, server] of mapping.servers) this.records.set(host, { server });
    log(`backend ${this.backend}: ${[...mapping.servers].map(([host, server]) => `${host} = ${server}`).join(', ')}${this.options.drain ? '; each is drained around its reload' : ''}`);
    if (this.options.drain) {
      const stats = await this.stats();
      // Hosts of one batch are drained together: each batch must leave a server UP outside it.
      for (const batch of batches) {
        const servers = batch.hosts.map((host) => this.record(host).server);
        this.refuseLastServer(stats, servers, batch.hosts.length > 1 ? 'the plan drains a batch of' : 'the plan drains');
      }
    }
    const percent = settings.canaryWeightPercent;
    if (percent !== undefined) {
      for (const host of batches.filter((batch) => batch.canary).flatMap((batch) => batch.hosts)) await this.planCanaryWeight(this.record(host), percent);
    }
  }

  /**
   * The canary's weight while the gate watches it: `percent` of the weight HAProxy was configured
   * with, rounded down as HAProxy does. A result of 0 would take the canary out of rotation (and
   * leave the gate nothing to judge): refused before any change, naming the weight it needs.
   */
  private async planCanaryWeight(record: ServerRecord, percent: number): Promise<void> {
    const name = `${this.backend}/${record.server}`;
    const answer = (await this.admin?.send(`get weight ${name}`)) ?? '';
    const match = /^(\d+) \(initial (\d+)\)/.exec(answer.trim());
    if (!match) throw new BalancerError(`HAProxy did not tell ${name}'s weight: ${answer.trim() || 'no answer'}`, this.remote?.name);
    const configured = Number(match[2]);
    const lowered = Math.floor((configured * percent) / 100);
    if (lowered < 1) {
      const needed = Math.ceil(100 / percent);
      throw new BalancerError(
        `lb-canary-weight ${percent}% of ${name}'s weight ${configured} is 0, which would take the canary out of rotation: give the backend's servers a weight of ${needed} or more in HAProxy's configuration (e.g. 'default-server weight 100'; equal weights share traffic as before), or raise lb-canary-weight. Nothing was changed.`,
        this.remote?.name,
      );
    }
    record.canaryWeight = { lowered, configured };
    this.options.log(`canary ${name} will take weight ${lowered} of its ${configured} (${percent}%) while the traffic gate watches it`);
  }

  async around<T>(host: string, work: () => Promise<T>, how: AroundOptions = {}): Promise<T> {
    const record = this.record(host);
    if (how.putBack) return this.aroundPutBack(host, record, work);
    const before = this.row(await this.stats(), record.server);
    try {
      // Lowered before the switch: the new release's first requests are already a small share.
      if (how.canary && record.canaryWeight) await this.lowerWeight(record, record.canaryWeight.lowered);
      // Forward work waits for the drain on the run's cancellation (nothing changed on the host yet).
      if (this.options.drain) await this.drain(record, before, this.options.signal);
    } catch (error) {
      await this.undoBeforeWork(host, record);
      throw error;
    }
    const result = await work();
    if (this.options.drain) await this.ready(record);
    await this.countErrors(record, before);
    return result;
  }

  /**
   * The host was never switched, but its server was drained or lowered for it: back in full
   * rotation now, since the rollout may go on without that host (max-failed-hosts) and a drained
   * server would count against the next batch's drains. On a cancelled run close() does it, so
   * the runner's seconds go to the hosts in flight.
   */
  private async undoBeforeWork(host: string, record: ServerRecord): Promise<void> {
    if (this.options.signal?.aborted) return;
    if (this.drained.has(record.server)) {
      try {
        await this.ready(record);
      } catch (error) {
        this.warn(`could not set ${this.backend}/${record.server} (${host}) ready again after its drain failed (${errorMessage(error)}); trying again at the end of the run`);
      }
    }
    if (this.lowered.has(record.server)) await this.fullWeight(host, record);
  }

  /**
   * A host going back to its previous release: nothing here stops the work. No cancellation is
   * taken, and when HAProxy cannot be reached (or refuses the drain) the host goes back undrained;
   * a server that cannot be set ready afterwards is named, and close() and the post step try again.
   */
  private async aroundPutBack<T>(host: string, record: ServerRecord, work: () => Promise<T>): Promise<T> {
    let before: ServerStat | undefined;
    try {
      before = this.row(await this.stats(), record.server);
      if (this.options.drain) await this.drain(record, before, undefined, true);
    } catch (error) {
      const undrained = this.options.drain && !this.drained.has(record.server) ? ', undrained' : '';
      this.warn(`could not reach HAProxy about ${this.backend}/${record.server} before putting ${host} back (${errorMessage(error)}); putting it back all the same${undrained}`);
    }
    const result = await work();
    if (this.options.drain || this.drained.has(record.server)) {
      try {
        await this.ready(record);
      } catch (error) {
        const drained = this.drained.has(record.server);
        if (drained) record.leftDrained = errorMessage(error);
        this.warn(`${host} is back on its previous release, but ${drained ? `${this.backend}/${record.server} may stay drained` : 'HAProxy did not confirm it'}: ${errorMessage(error)}`);
      }
    }
    if (this.lowered.has(record.server)) await this.fullWeight(host, record);
    if (before) await this.countErrors(record, before);
    return result;
  }

  /** Recorded before the command, like a drain: a run killed right after it still has it put back. */
  private async lowerWeight(record: ServerRecord, weight: number): Promise<void> {
    this.hold(this.lowered, record.server);
    await this.admin?.expectSilent(`set weight ${this.backend}/${record.server} ${weight}`);
    // As in drain(): a restoreNow that landed first leaves it lowered, so it is held again.
    this.hold(this.lowered, record.server);
    this.options.log(`${record.server} set to weight ${weight} (canary)`);
  }

  /**
   * Back to the configured weight (100% is of the weight in HAProxy's configuration). A canary
   * that stays light serves no error, only less traffic: a failure is named, and close(), SIGTERM
   * and the post step try again.
   */
  private async fullWeight(host: string, record: ServerRecord): Promise<void> {
    try {
      await this.admin?.expectSilent(`set weight ${this.backend}/${record.server} 100%`);
      this.lowered.delete(record.server);
      this.remember();
      this.options.log(`${record.server} back to its full weight${record.canaryWeight ? ` (${record.canaryWeight.configured})` : ''}`);
    } catch (error) {
      this.warn(`could not set ${this.backend}/${record.server} (${host}) back to its full weight (${errorMessage(error)}); trying again at the end of the run`);
    }
  }

  /** The server's errors from before the work to now, for the report: a counter, so a balancer out of reach only leaves it unknown. */
  private async countErrors(record: ServerRecord, before: ServerStat): Promise<void> {
    try {
      const after = this.row(await this.stats(), record.server);
      record.errorsDuringReload = (record.errorsDuringReload ?? 0) + errorsBetween(before, after);
    } catch (error) {
      this.options.log(`could not read ${record.server}'s counters after its reload: ${errorMessage(error)}`);
    }
  }

  private warn(line: string): void {
    (this.options.warn ?? ((text: string) => this.options.log(`WARNING: ${text}`)))(line);
  }

  /** What this run holds on HAProxy now; the post step gets it too. */
  private held(): HeldServers {
    return { backend: this.backend, drained: [...this.drained], lowered: [...this.lowered] };
  }

  private remember(): void {
    this.options.remember?.(this.held());
  }

  /** Records `server` as drained or lowered (`changes`) by this run, saved for the post step before the command that changes it. */
  private hold(changes: Set<string>, server: string): void {
    if (changes.has(server)) return;
    changes.add(server);
    this.remember();
  }

  async trafficCheck(hosts: readonly string[]): Promise<void> {
    const { settings, log, signal } = this.options;
    if (settings.windowSeconds === 0) return;
    const servers = hosts.map((host) => this.record(host).server);
    log(`traffic gate: watching ${servers.join(', ')} on the new release for ${settings.windowSeconds}s against the rest of backend ${this.backend}`);
    const before = await this.stats();
    const thresholds = { max5xxRate: settings.max5xxRate, latencyFactor: settings.latencyFactor };
    const started = Date.now();
    const end = started + settings.windowSeconds * 1000;
    // Read four times a second: errors enough to decide end the window early (a broken release
    // costs its clients a second, not the whole window); everything else is judged over the whole window.
    let verdict: TrafficVerdict;
    let early = '';
    for (;;) {
      await sleep(Math.max(0, Math.min(GATE_READING_MS, end - Date.now())), signal);
      throwIfCancelled(signal, 'finish the traffic gate', this.remote?.name);
      verdict = judgeTraffic(before, await this.stats(), servers, thresholds);
      if (Date.now() >= end) break;
      if (verdict.decisive) {
        early = ` (decided after ${((Date.now() - started) / 1000).toFixed(1)}s of the ${settings.windowSeconds}s window)`;
        break;
      }
    }
    for (const host of hosts) this.record(host).traffic = `${verdict.ok ? 'passed' : 'FAILED'}: ${verdict.summary}${early}`;
    log(`traffic gate ${verdict.ok ? 'passed' : 'FAILED'}: ${verdict.summary}${early}`);
    if (!verdict.ok) {
      await this.drainFailed(hosts);
      throw new TrafficGateError(`the traffic gate failed on ${servers.join(', ')}: ${verdict.summary}${early}`, hosts[0]);
    }
    // Passed: a canary watched at a lowered weight takes its full share now.
    for (const host of hosts) if (this.lowered.has(this.record(host).server)) await this.fullWeight(host, this.record(host));
  }

  /**
   * Servers the gate failed leave the rotation now, not when their hosts' rollback begins: every
   * request they take until then meets the failed release, and a strategy that does not drain
   * (usr2, rolling) keeps serving it through the whole revert. Done unless `drain: never`. Held
   * like any drain (the rollback finds it done and sets them ready; close and the post step
   * too); one HAProxy refuses (the last server UP) or cannot be reached for is named and left
   * to the rollback.
   */
  private async drainFailed(hosts: readonly string[]): Promise<void> {
    if (this.options.settings.drain === 'never') return;
    for (const host of hosts) {
      const record = this.record(host);
      try {
        await this.drain(record, this.row(await this.stats(), record.server), undefined, true);
      } catch (error) {
        this.options.log(`could not drain ${record.server} after the traffic gate failed (${errorMessage(error)}); its rollback puts it back as it is`);
      }
    }
  }

  async restoreNow(): Promise<void> {
    if (!this.admin || this.drained.size + this.lowered.size === 0) return;
    const { restored, warnings } = await restoreHeld(this.admin, this.held());
    for (const { server, change, line } of restored) {
      (change === 'drain' ? this.drained : this.lowered).delete(server);
      this.options.log(line);
    }
    for (const { server, change, line } of warnings) {
      if (change === 'drain') for (const record of this.records.values()) if (record.server === server) record.leftDrained = line;
      this.warn(line);
    }
    this.remember();
  }

  async close(reports: HostReport[]): Promise<void> {
    await this.restoreNow();
    for (const report of reports) {
      const record = this.records.get(report.host);
      if (!record) continue;
      report.balancer = {
        server: record.server,
        drainedSeconds: record.drainedSeconds === undefined ? undefined : Math.round(record.drainedSeconds * 10) / 10,
        sessionsAtDrain: record.sessionsAtDrain,
        errorsDuringReload: record.errorsDuringReload,
        traffic: record.traffic,
        leftDrained: this.drained.has(record.server) ? (record.leftDrained ?? 'not set back to ready') : undefined,
      };
    }
    await this.remote?.close().catch(() => undefined);
  }

  /**
   * Drains the server and waits until it is idle (or drain-timeout). Forward work passes the
   * run's signal: a cancel stops the wait with an error. A put-back (`briefOnCancel`) is never
   * stopped, but on a cancelled run it waits at most CANCELLED_DRAIN_WAIT_MS more.
   */
  private async drain(record: ServerRecord, before: ServerStat, signal: AbortSignal | undefined, briefOnCancel = false): Promise<void> {
    const { log, settings } = this.options;
    const server = record.server;
    // Still drained from a failed attempt (a rollback's around): already idle.
    if (this.drained.has(server)) return;
    // Checked and marked with no await in between: hosts of a batch drain concurrently, and
    // each must see the others as already out of rotation.
    this.refuseLastServer(await this.stats(), [server, ...this.drained], 'draining it now');
    // Saved before the command: a run killed right after it still has the post step set it ready.
    this.hold(this.drained, server);
    await this.admin?.expectSilent(`set server ${this.backend}/${server} state drain`);
    // restoreNow (the runner's SIGTERM) set it ready while this drain was on its way, and may
    // have landed first: it is drained now, so it is held again for close() and the post step.
    this.hold(this.drained, server);
    record.drainedAt = Date.now();
    record.sessionsAtDrain ??= before.scur + before.qcur;
    log(`${server} drained (${before.scur} sessions, ${before.qcur} queued)`);
    let last = before;
    const brief = briefOnCancel ? briefAfterCancel(this.options.signal) : undefined;
    let idle: true | undefined;
    try {
      idle = await pollUntil(
        async () => {
          last = this.row(await this.stats(), server);
          return last.scur === 0 && last.qcur === 0 ? true : undefined;
        },
        { timeoutMs: settings.drainTimeoutSeconds * 1000, intervalMs: POLL_MS, signal: brief?.signal ?? signal, what: `wait for ${server} to drain` },
      );
    } catch (error) {
      if (!brief?.signal.aborted) throw error;
      log(`WARNING: ${server} still has ${last.scur} sessions and ${last.qcur} queued; the run was cancelled, so it goes back without waiting longer`);
      return;
    } finally {
      brief?.dispose();
    }
    if (idle) log(`${server} has no session left`);
    else log(`WARNING: ${server} still has ${last.scur} sessions and ${last.qcur} queued after drain-timeout (${settings.drainTimeoutSeconds}s); reloading anyway`);
  }

  /** ready, then HAProxy's own check must say UP: only then does the next host go. Not cancellable: it puts things back. */
  private async ready(record: ServerRecord): Promise<void> {
    const server = record.server;
    await this.admin?.expectSilent(`set server ${this.backend}/${server} state ready`);
    this.drained.delete(server);
    this.remember();
    if (record.drainedAt !== undefined) record.drainedSeconds = (record.drainedSeconds ?? 0) + (Date.now() - record.drainedAt) / 1000;
    record.drainedAt = undefined;
    let status = '';
    const up = await pollUntil(
      async () => {
        const row = this.row(await this.stats(), server);
        status = row.status;
        return takesTraffic(row) ? true : undefined;
      },
      { timeoutMs: this.options.upTimeoutSeconds * 1000, intervalMs: POLL_MS },
    );
    if (!up) throw new BalancerError(`${this.backend}/${server} is ready but HAProxy's check did not report it UP within ${this.options.upTimeoutSeconds}s (status ${status})`, this.remote?.name);
    this.options.log(`${server} ready and UP in HAProxy after ${Math.round((record.drainedSeconds ?? 0) * 10) / 10}s out of rotation`);
  }

  /** Refuses to take `servers` out when no other server of the backend takes traffic. */
  private refuseLastServer(stats: ServerStat[], servers: readonly string[], why: string): void {
    const others = stats.filter((row) => row.backend === this.backend && !servers.includes(row.server) && takesTraffic(row));
    if (others.length === 0) {
      const named = servers.map((server) => `${this.backend}/${server}`).join(', ');
      throw new BalancerError(`${why} ${named} would leave the backend with no server UP; add a server, lower batch-size, or set drain: never.`, this.remote?.name);
    }
  }

  private async stats(): Promise<ServerStat[]> {
    if (!this.admin) throw new BalancerError('the balancer was not opened');
    return parseShowStat(await this.admin.send('show stat')).filter((row) => row.backend === this.backend);
  }

  private row(stats: ServerStat[], server: string): ServerStat {
    const row = stats.find((candidate) => candidate.server === server);
    if (!row) throw new BalancerError(`server ${server} is gone from backend ${this.backend}`, this.remote?.name);
    return row;
  }

  private record(host: string): ServerRecord {
    const record = this.records.get(host);
    if (!record) throw new BalancerError(`no HAProxy server is known for ${host}`, this.remote?.name);
    return record;
  }
}

function errorsBetween(before: ServerStat, after: ServerStat): number {
  return Math.max(0, after.hrsp5xx - before.hrsp5xx) + Math.max(0, after.eresp - before.eresp) + Math.max(0, after.econ - before.econ);
}

/** A signal that aborts CANCELLED_DRAIN_WAIT_MS after the run's cancel (at once counting from now, if it came already). */
function briefAfterCancel(run: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    timer = setTimeout(() => controller.abort(), CANCELLED_DRAIN_WAIT_MS);
  };
  if (run?.aborted) start();
  else run?.addEventListener('abort', start, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      run?.removeEventListener('abort', start);
    },
  };
}
