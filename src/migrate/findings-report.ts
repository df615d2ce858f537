/**
 * Lint findings for people: a job-summary section in Markdown, and annotations on the
 * revision files (plain data; the caller hands them to `core.error` / `core.warning` /
 * `core.notice`).
 */
import type { Dialect, Finding } from './lint/finding.js';

const DIALECT_NAMES: Record<Dialect, string> = {
  postgresql: 'PostgreSQL',
  mysql: 'MySQL',
  sqlite: 'SQLite',
  other: 'unrecognised dialect (generic rules only)',
};

export interface SummaryContext {
  dialect?: Dialect | null;
  /** `migration-lint: warn`: errors were reported but did not stop the deploy. */
  allowUnsafe?: boolean;
}

/** The job-summary section: problems first, then what was allowed, then info, folded. */
export function formatFindingsMarkdown(findings: readonly Finding[], context: SummaryContext = {}): string {
  const problems = findings.filter((finding) => !finding.allowed && finding.severity !== 'info');
  const allowed = findings.filter((finding) => finding.allowed);
  const infos = findings.filter((finding) => !finding.allowed && finding.severity === 'info');
  const errors = problems.filter((finding) => finding.severity === 'error').length;
  const lines = ['### Migration safety lint', ''];
  const counts = [
    plural(errors, 'error'),
    plural(problems.length - errors, 'warning'),
    `${allowed.length} allowed`,
    `${infos.length} info`,
  ].join(' · ');
  lines.push(`${counts}${context.dialect ? ` (${DIALECT_NAMES[context.dialect]})` : ''}`, '');
  if (errors > 0 && context.allowUnsafe) {
    lines.push('> [!WARNING]', '> `migration-lint: warn`: these errors did not stop the deploy.', '');
  }
  if (findings.length === 0) lines.push('No findings in the pending migrations.', '');
  if (problems.length > 0) {
    lines.push('| Severity | Rule | Revision | Statement and problem | Safe alternative |', '|---|---|---|---|---|');
    for (const finding of problems) {
      lines.push(row([finding.severity, code(finding.rule), where(finding), what(finding), finding.safeAlternative]));
    }
    lines.push('');
  }
  if (allowed.length > 0) {
    lines.push('**Allowed by the revisions**', '', '| Severity | Rule | Revision | Statement and problem | Reason |', '|---|---|---|---|---|');
    for (const finding of allowed) {
      lines.push(row([finding.severity, code(finding.rule), where(finding), what(finding), finding.allowReason ?? '(no reason given)']));
    }
    lines.push('');
  }
  if (infos.length > 0) {
    lines.push(`<details><summary>${plural(infos.length, 'info finding')}</summary>`, '');
    for (const finding of infos) lines.push(`- ${code(finding.rule)} in ${where(finding)}: ${cell(finding.message)}`);
    lines.push('', '</details>', '');
  }
  return lines.join('\n');
}

export interface FindingAnnotation {
  level: 'error' | 'warning' | 'notice';
  title: string;
  message: string;
  /** Path in the repository: the path prefix joined with the file's path in the release. */
  file: string;
  startLine?: number;
}

/**
 * One annotation per finding that has a file, info findings excepted (one per locking
 * revision would bury the rest). Allowed findings become notices.
 * `pathPrefix` is where the uploaded `source` directory sits in the repository ('' for its root).
 */
export function findingAnnotations(findings: readonly Finding[], pathPrefix = ''): FindingAnnotation[] {
  return findings
    .filter((finding) => finding.file !== '' && finding.severity !== 'info')
    .map((finding) => ({
      level: finding.allowed ? 'notice' : finding.severity === 'error' ? 'error' : 'warning',
      title: `Migration lint: ${finding.rule}${finding.allowed ? ' (allowed)' : ''}`,
      message: [
        finding.message,
        finding.statement ? `Statement: ${finding.statement}` : '',
        finding.allowed ? `Allowed: ${finding.allowReason ?? 'no reason given'}` : `Safe alternative: ${finding.safeAlternative}`,
      ]
        .filter((part) => part !== '')
        .join('\n'),
      file: joinPath(pathPrefix, finding.file),
      ...(finding.line !== undefined ? { startLine: finding.line } : {}),
    }));
}

function joinPath(prefix: string, file: string): string {
  // Only a leading './' (or '.' alone) means "here": '../x' and '.build' are real directories.
  const directory = (prefix === '.' ? '' : prefix.replace(/^(\.\/)+/, '')).replace(/\/+$/, '');
  return directory ? `${directory}/${file}` : file;
}

function where(finding: Finding): string {
  return finding.file ? `${code(finding.revision)} ${code(finding.file)}` : code(finding.revision);
}

function what(finding: Finding): string {
  return finding.statement ? `${code(oneLine(finding.statement, 120))}<br>${cell(finding.message)}` : cell(finding.message);
}

function row(cells: string[]): string {
  return `| ${cells.map(cell).join(' | ')} |`;
}

/** Table cells cannot hold pipes or line breaks. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function code(text: string): string {
  return `\`${text.replace(/`/g, "'")}\``;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
