import * as core from '@actions/core';
import type { DeployOutcome, HostReport } from './reporter.js';

const STATUS_ICON: Record<HostReport['status'], string> = {
  pending: '⏸️ not reached',
  deployed: '✅ deployed',
  'rolled-back': '↩️ rolled back',
  failed: '❌ failed',
  planned: '📝 planned',
};

/** The job summary: headline, one row per host, and the error if any. */
export async function writeJobSummary(outcome: DeployOutcome): Promise<void> {
  const summary = core.summary.addHeading(`graceful-deploy: ${outcome.status} ${outcome.release}`, 2);
  summary.addRaw(`Strategy <code>${outcome.strategy}</code>; previous release <code>${outcome.previousRelease ?? '—'}</code>.`, true);
  summary.addTable([
    [
      { data: 'Host', header: true },
      { data: 'Result', header: true },
      { data: 'Release', header: true },
      { data: 'Master pid (old → new)', header: true },
      { data: 'Workers (old → new)', header: true },
      { data: 'Time to ready', header: true },
      { data: 'Health', header: true },
    ],
    ...outcome.hosts.map((host) => [
      host.host,
      STATUS_ICON[host.status],
      host.release ?? '',
      `${host.oldMasterPid ?? '?'} → ${host.newMasterPid ?? '—'}`,
      `${host.oldWorkers?.join(' ') ?? '?'} → ${host.newWorkers?.join(' ') ?? '—'}`,
      host.secondsToReady === undefined ? '—' : `${host.secondsToReady} s`,
      host.health ?? '—',
    ]),
  ]);
  if (outcome.error) summary.addRaw('<p><b>Error:</b></p>', true).addCodeBlock(outcome.error);
  await summary.write();
}
