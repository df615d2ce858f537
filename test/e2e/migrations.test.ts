/**
 * Issue 4's proof: the migration step of the bundled action on 3 real hosts (sshd in network
 * namespaces, Debian's gunicorn and Alembic) against a real PostgreSQL 15 on the hosts'
 * network, under steady load through HAProxy, with zero failed requests throughout.
 *
 * The app (test/fixtures/migrate-app/) reads `users` on every request and in /health/ready,
 * so a release whose columns are missing is never ready, and old code broken by a schema
 * change fails requests the load counts. Releases: v1 (users: id, name; the baseline, applied
 * before the hosts start), v2 (a nullable email + CREATE INDEX CONCURRENTLY in an autocommit
 * block; code reads email), v3 (drops name, which v2 reads: refused by the lint), v4 (a
 * migration that fails on a missing table), v5 (two heads), and v6 on SQLite (one host, the
 * database file in shared/).
 *
 * PostgreSQL logs every DDL statement with its time, client address and application name
 * (env.py connects as application_name=alembic), which shows how many times, from which host
 * and when the migration ran.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, runChecked } from '../support/proc.js';
import type { ActionResult } from '../support/run-action.js';
import { startSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, removeSource, underLoad as underLoadOf } from './support/deploy-fixture.js';
import { migrateAppSource, seedMigrateRelease, type MigrateRelease } from './support/migrate-app.js';
import { startPostgres, type Postgres } from './support/postgres.js';

const MIGRATE = 'alembic upgrade head';
const V1: MigrateRelease = { version: 'v1', revisions: ['r1_users'], reads: 'name' };
const V2: MigrateRelease = { version: 'v2', revisions: ['r1_users', 'r2_email'], reads: 'name, email' };

/** One DDL statement from PostgreSQL's log (prefix '%m [%p] %h %a: '). */
interface LoggedStatement {
  at: number;
  client: string;
  application: string;
  statement: string;
}

interface Finding {
  rule: string;
  severity: string;
  revision: string;
  file: string;
  statement?: string;
  allowed: boolean;
}

describe('migrations: once, linted, before any reload, on 3 hosts under load', () => {
  let sb: Sandbox;
  let pg: Postgres;
  const sources: string[] = [];
  const source = async (release: MigrateRelease): Promise<string> => {
    const dir = await migrateAppSource(release);
    sources.push(dir);
    return dir;
  };
  /**
   * Deploys a release of the migrate app with `migrate-command: alembic upgrade head`. The
   * runner's workspace is the source's parent, as when a workflow checks the app out, so
   * annotations name the revision file as `<source dir>/migrations/versions/...`.
   */
  const deploy = async (release: MigrateRelease, inputs: Record<string, string> = {}): Promise<ActionResult> => {
    const dir = await source(release);
    return deployTo(
      sb,
      { source: dir, release: release.version, 'shared-paths': 'database.url', 'migrate-command': MIGRATE, ...inputs },
      { GITHUB_WORKSPACE: dirname(dir) },
    );
  };

  const underLoad = <T>(body: () => Promise<T>) => underLoadOf(sb, body);

  /** DDL PostgreSQL logged after `offset` bytes of its log. */
  const ddlSince = async (offset: number): Promise<LoggedStatement[]> => {
    const text = (await readFile(pg.logFile)).subarray(offset).toString('utf8');
    const statements: LoggedStatement[] = [];
    for (const match of text.matchAll(/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] (\S*) (\S*): LOG: {2}statement: (.*)$/gm)) {
      statements.push({ at: Date.parse(`${match[1].replace(' ', 'T')}Z`), client: match[2], application: match[3], statement: match[4] });
    }
    return statements;
  };
  const logSize = async (): Promise<number> => (await stat(pg.logFile)).size;

  /** The master pid each host's pidfile names, checked alive. */
  const masters = async (): Promise<number[]> =>
    Promise.all(
      sb.hosts.map(async (host) => {
        const result = await sb.exec(host.index, `pid=$(cat ${sb.appDir}/run/gunicorn.pid) && kill -0 "$pid" && echo "$pid"`);
        expect(result.code, `master of ${host.name}: ${result.stderr}`).toBe(0);
        return Number(result.stdout.trim());
      }),
    );
  const columns = async (): Promise<string[]> =>
    (await pg.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position")).split('\n');
  const revision = (): Promise<string> => pg.psql('SELECT version_num FROM alembic_version');
  const findings = (result: ActionResult): Finding[] => JSON.parse(result.outputs['migration-findings'] ?? 'null') as Finding[];
  const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

  /** Nothing moved: every host on v2 with the master it had, the database at r2 with its v2 columns. */
  const expectNothingChanged = async (before: number[], result: ActionResult): Promise<void> => {
    expect(result.stdout, logOf(result)).not.toMatch(/::group::Reload /);
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['pending', 'pending', 'pending']);
    await expectAllOn(sb, 'v2');
    for (const host of sb.hosts) expect((await hostState(sb, host.index)).previous, host.name).toBe('releases/v1');
    expect(await masters(), 'masters').toEqual(before);
    expect(await revision()).toBe('r2');
    expect(await columns()).toEqual(['id', 'name', 'email']);
  };

  beforeAll(async () => {
    sb = await startSandbox({ hosts: 3 });
    pg = await startPostgres({ listen: sb.rootIp, trust: sb.subnet });
    // The baseline schema (v1's r1), applied from the runner before the app starts.
    const baseline = await source(V1);
    await runChecked('/usr/bin/python3', ['-m', 'alembic', 'upgrade', 'r1'], {
      cwd: baseline,
      env: { ...process.env, DATABASE_URL: pg.url },
      what: 'alembic upgrade r1 (baseline)',
    });
    await Promise.all(
      sb.hosts.map(async (host) => {
        await mkdir(join(host.appDirBacking, 'shared'), { recursive: true });
        await writeFile(join(host.appDirBacking, 'shared', 'database.url'), `${pg.url}\n`);
        await seedMigrateRelease(sb, host.index, V1);
        await sb.startGunicorn(host.index);
      }),
    );
    await sb.waitForLb();
  });

  afterAll(async () => {
    await pg?.stop();
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('v1 → v2: the safe migration runs once, on the first host, before any reload; v2 code deploys with zero failed requests', async () => {
    const offset = await logSize();
    const { result, load } = await underLoad(() => deploy(V2));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({
      status: 'deployed',
      release: 'v2',
      'previous-release': 'v1',
      'migration-revision-before': 'r1',
      'migration-revision-after': 'r2',
    });
    expect(findings(result).filter((finding) => finding.severity !== 'info'), result.outputs['migration-findings']).toEqual([]);
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    await expectAllOn(sb, 'v2');
    expect(load.versions.v2, JSON.stringify(load.versions)).toBeGreaterThan(0);

    // Once, in its own group, before the first Reload group: the log order.
    const first = sb.hosts[0].ip;
    expect(count(result.stdout, /::group::Migrate on /)).toBe(1);
    expect(count(result.stdout, /running migrate-command \(lock_timeout 5s\)/)).toBe(1);
    const migrateAt = result.stdout.indexOf(`::group::Migrate on root@${first}`);
    const migratedAt = result.stdout.indexOf(`[root@${first}] database now at r2`);
    const firstReload = result.stdout.indexOf('::group::Reload ');
    expect(migrateAt).toBeGreaterThan(-1);
    expect(migratedAt).toBeGreaterThan(migrateAt);
    expect(firstReload).toBeGreaterThan(migratedAt);

    // Once, from the first host: what PostgreSQL itself executed.
    const ddl = await ddlSince(offset);
    const addColumn = ddl.filter((entry) => /^ALTER TABLE users ADD COLUMN email\b/.test(entry.statement));
    const createIndex = ddl.filter((entry) => /^CREATE INDEX CONCURRENTLY ix_users_email ON users/.test(entry.statement));
    expect(addColumn, JSON.stringify(ddl)).toHaveLength(1);
    expect(createIndex, JSON.stringify(ddl)).toHaveLength(1);
    expect(ddl, 'every DDL statement came from alembic on the first host').toEqual(
      ddl.map((entry) => ({ ...entry, client: first, application: 'alembic' })),
    );
    // Before the first reload: the DDL ended before `current` was switched on any host
    // (PostgreSQL's log time and the symlink's mtime read the same clock).
    for (const host of sb.hosts) {
      const switched = Number((await sb.exec(host.index, `stat -c %.3Y ${sb.appDir}/current`)).stdout.trim()) * 1000;
      expect(createIndex[0].at, `DDL before ${host.name} switched`).toBeLessThan(switched);
    }

    // The schema v2 expects: column, valid index built concurrently, revision.
    expect(await columns()).toEqual(['id', 'name', 'email']);
    expect(await pg.psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_users_email'::regclass")).toBe('t');
    expect(await revision()).toBe('r2');
    const page = await fetch(sb.lbUrl);
    expect(await page.text()).toMatch(/^migrate-app v2 \(users: id, name, email\)\n1 \| ada \| None\n/);
    expect(result.summary).toContain('Database migrated from `r1` to `r2`');
  });

  it('v3 drops a column the running v2 code reads: refused before any change, naming rule, revision and file', async () => {
    const before = await masters();
    const offset = await logSize();
    const { result } = await underLoad(() => deploy({ version: 'v3', revisions: ['r1_users', 'r2_email', 'r3_drop_name'], reads: 'email' }));
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');

    const file = 'migrations/versions/r3_drop_name.py';
    expect(result.stdout).toContain(`error drop-column in r3 (${file})`);
    expect(result.stdout).toContain(`The migration lint found 1 unsafe operation: drop-column in r3 (${file}). Nothing was migrated.`);
    // The annotation on the revision file, as the runner reads it (`:` escaped as %3A).
    const annotation = `::error title=Migration lint%3A drop-column,file=${basename(sources.at(-1)!)}/${file},line=18::DROP COLUMN users.name`;
    expect(result.stdout).toContain(annotation);
    expect(result.stdout).not.toMatch(/running migrate-command/);
    const dropColumn = findings(result).filter((finding) => finding.severity === 'error');
    expect(dropColumn, result.outputs['migration-findings']).toEqual([
      expect.objectContaining({ rule: 'drop-column', severity: 'error', revision: 'r3', file, allowed: false, statement: expect.stringMatching(/ALTER TABLE users DROP COLUMN name/) }),
    ]);
    expect(result.summary).toContain('### Migration safety lint');
    expect(result.summary).toContain('Refused by the lint: nothing was migrated.');
    expect(result.summary).toMatch(/\| error \| `drop-column` \| `r3` `migrations\/versions\/r3_drop_name\.py` \|/);

    expect(await ddlSince(offset)).toEqual([]);
    await expectNothingChanged(before, result);
  });

  it('v4: a migration that fails stops the deploy before any reload, with the tail of Alembic\'s output', async () => {
    const before = await masters();
    const { result } = await underLoad(() => deploy({ version: 'v4', revisions: ['r1_users', 'r2_email', 'r4_broken'], reads: 'name, email' }));
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(count(result.stdout, /running migrate-command/)).toBe(1);
    // The step's error, as the step fails with it: cause, revision, and Alembic's own last lines.
    const failure = /^::error::Deploy failed: (.*)$/m.exec(result.stdout)?.[1]?.replace(/%0A/g, '\n') ?? '';
    expect(failure, logOf(result)).toMatch(/The migrate command failed \(exit 1\)\. The database is at revision r2\./);
    expect(failure).toMatch(/psycopg2\.errors\.UndefinedTable\) relation "accounts" does not exist/);
    expect(failure).toMatch(/\[SQL: ALTER TABLE accounts ADD COLUMN plan VARCHAR\(20\)\]/);
    // PostgreSQL rolled the whole upgrade back: not even the column added before the failure.
    expect(await columns()).not.toContain('phone');
    await expectNothingChanged(before, result);
  });

  it('v5: two heads are a clear error before anything runs', async () => {
    const before = await masters();
    const offset = await logSize();
    const { result } = await underLoad(() =>
      deploy({ version: 'v5', revisions: ['r1_users', 'r2_email', 'r5a_phone', 'r5b_nickname'], reads: 'name, email' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toMatch(/The migrations have 2 heads \((r5a, r5b|r5b, r5a)\); they must have exactly one\. Join them with 'alembic merge heads'/);
    expect(result.stdout).not.toMatch(/running migrate-command/);
    expect(await ddlSince(offset)).toEqual([]);
    await expectNothingChanged(before, result);
  });

  it('mode: migrate runs only the gated step, from a scratch copy it removes: no host switches or reloads', async () => {
    const before = await masters();
    const offset = await logSize();
    const v7: MigrateRelease = { version: 'v7', revisions: ['r1_users', 'r2_email', 'r5a_phone'], reads: 'name, email' };
    const { result } = await underLoad(() => deploy(v7, { mode: 'migrate', 'migrate-host': sb.hosts[1].ip }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'migrated', release: 'v7', 'migration-revision-before': 'r2', 'migration-revision-after': 'r5a' });
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['pending', 'migrated', 'pending']);
    expect(result.stdout).toMatch(/lint \(postgresql\): 1 pending revision, 0 errors/);
    expect(result.stdout).not.toMatch(/::group::Reload /);
    // Once, from the migrate host, in the scratch copy.
    const ddl = await ddlSince(offset);
    expect(ddl.filter((entry) => /^ALTER TABLE users ADD COLUMN phone\b/.test(entry.statement)).map((entry) => entry.client)).toEqual([sb.hosts[1].ip]);
    expect(await revision()).toBe('r5a');
    expect(await columns()).toEqual(['id', 'name', 'email', 'phone']);
    // Nothing else moved: every host serves v2 with its master; no v7 and no scratch copy left
    // (the releases of the refused deploys above stay, as they always did).
    await expectAllOn(sb, 'v2');
    expect(await masters()).toEqual(before);
    for (const host of sb.hosts) {
      const entries = (await sb.exec(host.index, `ls -A ${sb.appDir}/releases`)).stdout.trim().split('\n');
      expect(entries, host.name).toContain('v2');
      expect(entries.filter((entry) => entry === 'v7' || entry.startsWith('.migrate-') || entry.startsWith('.upload-')), host.name).toEqual([]);
    }

    // Again: the database is at the head, nothing to migrate.
    const again = await deploy(v7, { mode: 'migrate' });
    expect(again.outputs, logOf(again)).toMatchObject({ status: 'migrated', 'migration-revision-before': 'r5a', 'migration-revision-after': 'r5a' });
    expect(again.stdout).toMatch(/database already at head r5a: skipping migrations/);
  });

  it('SQLite: one host, the database file in shared/, a plain ADD COLUMN deploys', async () => {
    const host = sb.hosts[0];
    const dbFile = join(host.appDirBacking, 'shared', 'db', 'app.sqlite');
    const v6: MigrateRelease = {
      version: 'v6',
      revisions: ['r1_users', 's2_email'],
      reads: 'name, email',
      databaseUrl: `sqlite:///${sb.appDir}/shared/db/app.sqlite`,
    };
    await mkdir(join(host.appDirBacking, 'shared', 'db'), { recursive: true });
    await runChecked('/usr/bin/python3', ['-m', 'alembic', 'upgrade', 'r1'], {
      cwd: await source(v6),
      env: { ...process.env, DATABASE_URL: `sqlite:///${dbFile}` },
      what: 'alembic upgrade r1 (SQLite baseline)',
    });

    const { result } = await underLoad(() => deploy(v6, { hosts: host.ip, 'shared-paths': '' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', 'migration-revision-before': 'r1', 'migration-revision-after': 's2' });
    expect(result.stdout).toMatch(/lint \(sqlite\): 1 pending revision, 0 errors, 0 warnings/);
    expect(await hostState(sb, host.index)).toMatchObject({ current: 'releases/v6', served: 'v6', status: 200 });
    const schema = await run('/usr/bin/python3', ['-c', 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT group_concat(name) FROM pragma_table_info(\'users\')").fetchone()[0])', dbFile]);
    expect(schema.stdout.trim(), schema.stderr).toBe('id,name,email');
  });
});
