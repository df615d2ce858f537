/**
 * The rollout plan as data: which hosts reload together, in which order. Pure, so every
 * count, percentage and edge is a table test (test/unit/rollout-plan.test.ts).
 */

/** `batch-size`: a host count, or a percentage of the whole fleet. */
export type BatchSize = { count: number } | { percent: number };

export interface RolloutSettings {
  /** The first `canary` hosts (in the hosts input's order) go first, as their own batch; 0 = no canary. */
  canary: number;
  /** Hosts per batch after the canary. */
  batchSize: BatchSize;
}

export interface Batch {
  /** 0-based position in the plan. */
  index: number;
  hosts: string[];
  /** The canary batch: deployed alone first, then held for canary-wait. */
  canary: boolean;
}

/**
 * Hosts per batch for a fleet of `fleet` hosts. A percentage is of the whole fleet (canary
 * included) and rounds down, like Ansible's `serial`, but never below one host: 25% of 10
 * hosts is 2, 25% of 3 hosts is 1.
 */
export function hostsPerBatch(size: BatchSize, fleet: number): number {
  if ('count' in size) return Math.max(1, size.count);
  return Math.max(1, Math.floor((fleet * size.percent) / 100));
}

/**
 * Canary first (clamped to the fleet: a canary as large as the fleet is one batch of all),
 * then the rest in order, `hostsPerBatch` at a time; the last batch takes what is left.
 */
export function planRollout(hosts: readonly string[], settings: RolloutSettings): Batch[] {
  const batches: Batch[] = [];
  const canary = Math.min(Math.max(0, settings.canary), hosts.length);
  if (canary > 0) batches.push({ index: 0, hosts: hosts.slice(0, canary), canary: true });
  const per = hostsPerBatch(settings.batchSize, hosts.length);
  for (let start = canary; start < hosts.length; start += per) {
    batches.push({ index: batches.length, hosts: hosts.slice(start, start + per), canary: false });
  }
  return batches;
}

/** One line per batch, for `mode: plan` and the log: "batch 2 (3 hosts): web3, web4, web5". */
export function describePlan(batches: readonly Batch[]): string[] {
  return batches.map((batch) => {
    const what = batch.canary ? 'canary' : `batch ${batch.index + (batches[0]?.canary ? 0 : 1)}`;
    return `${what} (${batch.hosts.length} host${batch.hosts.length === 1 ? '' : 's'}): ${batch.hosts.join(', ')}`;
  });
}

/** `batch-size` text: a whole number of hosts (≥ 1) or a percentage `1%`..`100%`; undefined when malformed. */
export function parseBatchSize(text: string): BatchSize | undefined {
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (percent) {
    const value = Number(percent[1]);
    return value > 0 && value <= 100 ? { percent: value } : undefined;
  }
  if (/^\d+$/.test(text) && Number(text) >= 1) return { count: Number(text) };
  return undefined;
}
