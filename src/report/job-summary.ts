import * as core from '@actions/core';
import { formatFindingsMarkdown } from '../migrate/index.js';
import { ganttChart } from './gantt-chart.js';
import type { DeployOutcome, HostReport, MigrationOutcome } from './reporter.js';

const STATUS_ICON: Record<HostReport['status'], string> = {
  pending: '⏸️ not reached',
  deployed: '✅ deployed',
  'rolled-back': '↩️ rolled back',
  failed: '❌ failed',
  planned: '📝 planned',
  unlocked: '🔓 unlocked',
  unchanged: '⏭️ already current',
  migrated: '🗄️ migrated, not reloaded',
};

/** The job summary: headline, one row per host, and the error if any. */
export async function writeJobSummary(outcome: DeployOutcome): Promise<void> {
  // Names, versions and bodies come from the hosts and the app: every one is escaped, so none can add markup.
  const summary = core.summary.addHeading(`graceful-deploy: ${outcome.status} ${cell(outcome.release)}`, 2);
  const next = outcome.rollbackTarget === undefined ? '' : `; <code>mode: rollback</code> now goes to <code>${cell(outcome.rollbackTarget || '— (no previous release)')}</code>`;
  summary.addRaw(`Strategy <code>${cell(outcome.strategy)}</code>; previous release <code>${cell(outcome.previousRelease ?? '—')}</code>${next}.`, true);
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
    ...outcome.hosts.map((host) =>
      [
        host.host,
        host.removedLock ? `${STATUS_ICON[host.status]} (removed the lock of ${host.removedLock})` : STATUS_ICON[host.status],
        host.release ?? '',
        `${host.oldMasterPid ?? '?'} → ${host.newMasterPid ?? '—'}`,
        `${host.oldWorkers?.join(' ') ?? '?'} → ${host.newWorkers?.join(' ') ?? '—'}`,
        host.secondsToReady === undefined ? '—' : `${host.secondsToReady} s`,
        host.health ?? '—',
      ].map(cell),
    ),
  ]);
  if (outcome.hosts.some((host) => host.balancer)) summary.addRaw(balancerSection(outcome.hosts), true);
  const chart = ganttChart(outcome.hosts, `${outcome.status} ${outcome.release}`);
  // Blank lines around the fence: after the table's HTML, markdown only starts again after one.
  if (chart) summary.addRaw(`\n<p>Where the time went, per host (runner's clock):</p>\n\n${chart}\n`, true);
  if (outcome.migration) summary.addRaw(migrationSection(outcome.migration, outcome.status), true);
  if (outcome.error) summary.addRaw('<p><b>Error:</b></p>', true).addCodeBlock(escapeHtml(outcome.error));
  await summary.write();
}

function migrationSection(migration: MigrationOutcome, status: DeployOutcome['status']): string {
  const lines = [`\n### Migrations on ${cell(migration.host)}\n`];
  if (migration.refused) lines.push('Refused by the lint: nothing was migrated.');
  else if (migration.failed) lines.push(`The migration step failed with the database at ${code(migration.revisionAfter ?? migration.revisionBefore ?? 'unknown')}; no host reloaded.`);
  else if (migration.skipped) lines.push(`Nothing to migrate: the database is at the head (${code(migration.revisionBefore ?? 'empty')}).`);
  else lines.push(`Database migrated from ${code(migration.revisionBefore ?? 'empty')} to ${code(migration.revisionAfter ?? 'empty')}.`);
  if (!migration.skipped && !migration.failed && (status === 'rolled-back' || status === 'failed')) {
    lines.push('', '**The migrations were not rolled back** (the action never downgrades a schema): the previous release runs against the new schema, which is safe for expand-only migrations.');
  }
  if (migration.findings.length > 0) lines.push('', formatFindingsMarkdown(migration.findings, { dialect: migration.dialect ?? undefined }));
  return lines.join('\n');
}

/** Per server: how long it was out of rotation, what it held when drained, the errors HAProxy saw, the traffic gate. */
function balancerSection(hosts: HostReport[]): string {
  const lines = ['\n### Load balancer\n', '| Host | Server | Drained for | Sessions at drain | Errors during reload | Traffic gate |', '|---|---|---|---|---|---|'];
  for (const host of hosts) {
    const seen = host.balancer;
    if (!seen) continue;
    lines.push(
      `| ${[
        host.host,
        seen.server,
        seen.drainedSeconds === undefined ? 'not drained' : `${seen.drainedSeconds} s`,
        seen.sessionsAtDrain === undefined ? '—' : String(seen.sessionsAtDrain),
        seen.errorsDuringReload === undefined ? '—' : String(seen.errorsDuringReload),
        seen.traffic ?? '—',
      ]
        .map(cell)
        .join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** What the post step did on one host. */
export interface PostHost {
  host: string;
  /** How far the main step got there: locked, reloading, done. */
  phase: string;
  result: string;
  failed: boolean;
}

/** The post step's section of the job summary: one row per host it visited. */
export async function writePostSummary(results: PostHost[]): Promise<void> {
  await core.summary
    .addHeading('graceful-deploy post step', 3)
    .addRaw('The main step did not finish; the post step put the hosts it had locked in order and released its locks.', true)
    .addTable([
      [
        { data: 'Host', header: true },
        { data: 'Main step reached', header: true },
        { data: 'Post step', header: true },
      ],
      ...results.map((result) => [cell(result.host), cell(result.phase), `${result.failed ? '❌ ' : ''}${cell(result.result)}`]),
    ])
    .write();
}

/**
 * One line of text that stays text in HTML and in markdown: escaped, on one line (a blank line
 * would end the HTML block and let markdown start), with markdown's inline markers as entities.
 */
function cell(text: string): string {
  // One pass: escaping HTML first would let the '#' of '&#39;' be escaped again.
  return text.replace(/\s+/g, ' ').replace(/[&<>"'\\`*_[\]|~!#]/g, (char) => escapeHtml(char) === char ? `&#${char.charCodeAt(0)};` : escapeHtml(char));
}

/** A value as a markdown code span, which shows markup literally; a backtick or line break inside could end it. */
function code(text: string): string {
  return `\`${text.replace(/`/g, "'").replace(/\s+/g, ' ')}\``;
}
