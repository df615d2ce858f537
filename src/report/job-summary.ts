import * as core from '@actions/core';
import { formatFindingsMarkdown } from '../migrate/index.js';
import { ganttChart } from './gantt-chart.js';
import { cause, causeDetails, durationText, headline, servesNow } from './outcome-text.js';
import type { DeployOutcome, HostReport, MigrationOutcome } from './reporter.js';
import type { RunFacts } from './run-links.js';

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

const RUN_ICON: Record<DeployOutcome['status'], string> = {
  deployed: '✅',
  'rolled-back': '↩️',
  failed: '❌',
  planned: '📝',
  unlocked: '🔓',
  cancelled: '⏹️',
  unchanged: '⏭️',
  migrated: '🗄️',
};

/**
 * The job summary, in the order a person asks: what happened (on a failure, the cause first),
 * who ran it, how long it took and what it shipped, what to do next after a cancel, then one
 * row per host, the plan, the balancer, where the time went and the migrations.
 */
export async function writeJobSummary(outcome: DeployOutcome, facts?: RunFacts): Promise<void> {
  // Names, versions and bodies come from the hosts and the app: every one is escaped, so none can add markup.
  const summary = core.summary.addHeading(`${RUN_ICON[outcome.status]} graceful-deploy: ${outcome.status} ${cell(outcome.release)}`, 2);
  const why = cause(outcome);
  if (why) {
    // The output tail a failure carries (an import check's traceback) follows its first line.
    summary.addRaw(`<p><b>Cause:</b> ${cell(why)}</p>`, true);
    const details = causeDetails(outcome);
    if (details) summary.addCodeBlock(escapeHtml(details));
  }
  summary.addRaw(`<p>${cell(headline(outcome, facts?.mode))}</p>`, true);
  summary.addRaw(`<p>${runLine(outcome, facts)}</p>`, true);
  if (outcome.rollbackTarget !== undefined) summary.addRaw(`<p><code>mode: rollback</code> now goes to <code>${cell(outcome.rollbackTarget || '— (no previous release)')}</code>.</p>`, true);
  if (outcome.status === 'cancelled') summary.addRaw(nextStepsAfterCancel(outcome, facts?.mode ?? 'deploy'), true);
  if (outcome.plan?.length) summary.addRaw(`\n### Rollout plan\n\n${outcome.plan.map((line) => `- ${cell(line)}`).join('\n')}\n`, true);
  if (outcome.hosts.length) {
    summary.addTable([
      ['Host', 'Batch', 'Result', 'Serves', 'Master pid (old → new)', 'Workers (old → new)', 'Time to ready', 'Health', 'Error'].map((data) => ({ data, header: true })),
      ...outcome.hosts.map((host) =>
        [
          host.host,
          batchName(host, outcome.hosts),
          host.removedLock ? `${STATUS_ICON[host.status]} (removed the lock of ${host.removedLock})` : STATUS_ICON[host.status],
          servesNow(host) ?? (host.status === 'failed' ? '?' : '—'),
          `${host.oldMasterPid ?? '?'} → ${host.newMasterPid ?? '—'}`,
          `${host.oldWorkers?.join(' ') ?? '?'} → ${host.newWorkers?.join(' ') ?? '—'}`,
          host.secondsToReady === undefined ? '—' : `${host.secondsToReady} s`,
          host.health ?? '—',
          host.error ? shorten(stripHost(host.error.split('\n')[0] ?? '')) : '—',
        ].map(cell),
      ),
    ]);
  }
  for (const host of outcome.hosts.filter((report) => report.serverLog)) summary.addRaw(serverLogSection(host), true);
  if (outcome.hosts.some((host) => host.balancer)) summary.addRaw(balancerSection(outcome.hosts), true);
  const chart = ganttChart(outcome.hosts, `${outcome.status} ${outcome.release}`);
  // Blank lines around the fence: after the table's HTML, markdown only starts again after one.
  if (chart) summary.addRaw(`\n<p>Where the time went, per host (runner's clock):</p>\n\n${chart}\n`, true);
  if (outcome.migration) summary.addRaw(migrationSection(outcome.migration, outcome.status), true);
  await summary.write();
}

/** "Started by octocat · took 1 min 12 s · strategy usr2 · commit abc1234 · changes v1…v2", each part when known. */
function runLine(outcome: DeployOutcome, facts?: RunFacts): string {
  const parts: string[] = [];
  if (facts?.actor) parts.push(`Started by <b>${cell(facts.actor)}</b>`);
  if (facts) parts.push(`took ${durationText(facts.seconds)}`);
  if (outcome.strategy) parts.push(`strategy <code>${cell(outcome.strategy)}</code>`);
  if (outcome.previousRelease) parts.push(`previous release <code>${cell(outcome.previousRelease)}</code>`);
  if (facts?.commit) parts.push(`commit <a href="${escapeHtml(facts.commit.url)}"><code>${cell(facts.commit.sha.slice(0, 7))}</code></a>`);
  if (facts?.compare) parts.push(`changes <a href="${escapeHtml(facts.compare.url)}">${cell(facts.compare.from)}…${cell(facts.compare.to)}</a>`);
  return parts.join(' · ');
}

/** After a cancel every host serves one release: which, and the two ways on from there. */
function nextStepsAfterCancel(outcome: DeployOutcome, mode: RunFacts['mode']): string {
  const moved = outcome.hosts.filter((host) => host.status === 'deployed').map((host) => host.host);
  const stayed = outcome.hosts.filter((host) => host.status !== 'deployed').map((host) => host.host);
  const steps = ['The locks are released and every host serves one release: nothing is left half-done.'];
  const again = mode === 'rollback' ? 'run the rollback again' : `deploy ${code(outcome.release)} again`;
  if (stayed.length) steps.push(`To finish: ${again} with ${code(`hosts: ${stayed.join(', ')}`)} (the hosts still on ${code(outcome.previousRelease ?? 'the previous release')}).`);
  if (moved.length && mode !== 'rollback') steps.push(`To undo: run ${code('mode: rollback')} with ${code(`hosts: ${moved.join(', ')}`)} (the hosts already on ${code(outcome.release)}).`);
  if (!moved.length) steps.push('No host reached the new release.');
  return `\n### Next steps\n\n${steps.map((step) => `- ${step}`).join('\n')}\n`;
}

/** The batch as `mode: plan` names it: "canary", then "1", "2", ... */
function batchName(host: HostReport, hosts: readonly HostReport[]): string {
  if (host.batch === undefined) return '—';
  if (host.canary) return 'canary';
  return String(host.batch + (hosts.some((other) => other.canary) ? 0 : 1));
}

/** Errors start with the host they concern ("[web1] ..."); the row already names it. */
function stripHost(text: string): string {
  return text.replace(/^\[[^\]]+\] /, '');
}

function shorten(text: string, limit = 300): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** A failed host's server log tail, folded: the traceback behind the Error cell. */
function serverLogSection(host: HostReport): string {
  const log = host.serverLog;
  if (!log) return '';
  return `\n<details><summary>Last lines of ${cell(host.host)}'s server log (${cell(log.source)})</summary>\n\n<pre><code>${escapeHtml(log.lines)}</code></pre>\n</details>\n`;
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
        seen.leftDrained ? `MAY STILL BE DRAINED: ${seen.leftDrained}` : seen.drainedSeconds === undefined ? 'not drained' : `${seen.drainedSeconds} s`,
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
