/**
 * The load balancer as the deploy story sees it: a narrow interface, so the story reads the
 * same with or without one (NO_BALANCER does nothing) and tests can stub it.
 */
import type { HostTarget } from '../config/settings.js';
import type { HostReport } from '../report/reporter.js';

/** How a host's work goes through the balancer. */
export interface AroundOptions {
  /**
   * Putting a host back (a rollback): nothing the balancer does stops the work. The run's
   * cancellation is not taken (a cancel must not leave the host on the failed release), and
   * when HAProxy cannot be reached the host is put back all the same, undrained, and the run
   * names the servers that may stay drained.
   */
  putBack?: boolean;
  /** The host is a canary: with lb-canary-weight its server takes a lowered weight until the traffic gate passes (or it is put back). */
  canary?: boolean;
}

/** A batch of the rollout plan as the balancer needs it: host labels reloading together, and whether it is the canary. */
export interface PlannedBatch {
  hosts: readonly string[];
  canary: boolean;
}

export interface Balancer {
  /**
   * Connects to the balancer, maps every host to its server and refuses a plan it cannot
   * carry out (unknown host, a drain that would leave the backend with no server UP), before
   * anything changes. `batches` (default one host at a time, no canary) are drained together:
   * each must leave a server UP outside it. With lb-canary-weight, a canary's server must have a
   * weight that can be lowered.
   */
  open(hosts: readonly HostTarget[], signal?: AbortSignal, batches?: readonly PlannedBatch[]): Promise<void>;
  /**
   * drain (when this strategy needs it) → wait until the server has no session → work → ready →
   * wait until HAProxy's check says UP. When work fails the server stays drained (it may serve
   * a broken release) until a later around() of the same host or close() makes it ready. Forward
   * work stops on the run's cancellation before it starts (the drain wait), never once it runs.
   */
  around<T>(host: string, work: () => Promise<T>, options?: AroundOptions): Promise<T>;
  /**
   * Watches real traffic on `hosts` (now on the new release) for the gate's window and
   * throws a TrafficGateError when their errors or response time exceed the others' by the
   * thresholds. A canary at a lowered weight goes back to its full weight when it passes.
   */
  trafficCheck(hosts: readonly string[]): Promise<void>;
  /** Sets every server this run drained back to ready, puts what it saw into `reports`, closes the connection. Never throws. */
  close(reports: HostReport[]): Promise<void>;
  /**
   * The runner's last seconds (SIGTERM, 2.5 s before it kills the process tree): every server
   * this run drained goes back to ready now, whatever its host is doing. HAProxy's own check
   * keeps traffic off a host that cannot answer; a server left drained would be an outage
   * waiting for the next deploy. Never throws.
   */
  restoreNow(): Promise<void>;
}

/** No balancer (lb empty): the work runs as it is and there is nothing to check. */
export const NO_BALANCER: Balancer = {
  open: async () => undefined,
  around: (_host, work) => work(),
  trafficCheck: async () => undefined,
  close: async () => undefined,
  restoreNow: async () => undefined,
};

/** The run's balancer, or NO_BALANCER. */
export function balancerOf(deps: { balancer?: Balancer }): Balancer {
  return deps.balancer ?? NO_BALANCER;
}
