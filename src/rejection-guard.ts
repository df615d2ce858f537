import { errorMessage } from './errors.js';
import type { DeployOutcome } from './report/reporter.js';

/** What guardRejections() caught. */
export interface RejectionGuard {
  /** The first rejection no one handled, if any. */
  readonly fault: Error | undefined;
  /** Removes the guard. */
  dispose(): void;
}

/**
 * Node 24 exits on a promise rejection that no code handled: mid-reload, that would leave a host
 * with two masters and its deploy lock held. While the guard is on, the first such rejection is
 * kept as the run's fault and `stop` is called (main.ts aborts the run's signal: as on a cancel,
 * nothing new starts, the host in flight is put back and the locks are released); later ones
 * go to `note` (the log), since the run is already stopping.
 */
export function guardRejections(stop: (fault: Error) => void, note: (later: Error) => void = () => undefined): RejectionGuard {
  let fault: Error | undefined;
  const listener = (reason: unknown) => {
    const error = reason instanceof Error ? reason : new Error(errorMessage(reason));
    if (fault) return note(error);
    fault = error;
    stop(fault);
  };
  process.on('unhandledRejection', listener);
  return {
    get fault() {
      return fault;
    },
    dispose: () => {
      process.off('unhandledRejection', listener);
    },
  };
}

/**
 * The outcome of a run the guard stopped: failed, naming the fault, keeping what the stop did on
 * each host (the cancel's account, without its "cancelled by the runner").
 */
export function faultedOutcome(outcome: DeployOutcome, fault: Error): DeployOutcome {
  const account = (outcome.error ?? '').replace(/^cancelled by the runner; /, '');
  return { ...outcome, status: 'failed', error: `an error no code path handled stopped the run (${errorMessage(fault)})${account ? `; ${account}` : ''}` };
}
