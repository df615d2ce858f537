import type { RemoteHost } from '../../remote/remote-host.js';
import { signalCommand } from '../gunicorn/gunicorn-commands.js';
import { describePidsCommand, parseDescribedPids } from '../gunicorn/process-facts.js';
import type { Log } from '../server-driver.js';
import type { UwsgiInstance } from './instance-check.js';
import type { InstanceStats } from './stats-reader.js';

/**
 * Retires, at once, every worker that accepts with no app loaded: each answers every request
 * with an error, and a chain reload would reach it only in turn (or not at all while uWSGI's
 * own chain still runs and ignores a new `c`). SIGHUP is what uWSGI's chain sends a victim:
 * the worker finishes its request and exits, and the master forks a new one, which imports
 * what `current` points to. Only children of the verified master are signalled, each with
 * its start time re-checked in the signalling shell.
 */
export async function retireEmptyWorkers(host: RemoteHost, instance: UwsgiInstance, stats: InstanceStats, log: Log): Promise<number[]> {
  const empty = stats.workers.filter((worker) => worker.pid > 0 && worker.accepting && worker.apps === 0).map((worker) => worker.pid);
  if (empty.length === 0) return [];
  const facts = parseDescribedPids((await host.exec('read the workers without an app', describePidsCommand(empty))).stdout, empty);
  const retired: number[] = [];
  for (const worker of facts.filter((process) => process.ppid === instance.pid)) {
    await host.exec(`retire uWSGI worker ${worker.pid} (no app loaded)`, signalCommand(worker.pid, worker.startTime, 'HUP'), { allowFailure: true });
    retired.push(worker.pid);
  }
  if (retired.length) log(`HUP → worker ${retired.join(', ')} (no app loaded): the master forks replacements from the previous release`);
  return retired;
}
