/**
 * The version matrix: the core cases of every strategy on every gunicorn the action supports,
 * each installed the way users have it. Debian's 20.1 runs from /usr/bin/gunicorn; 21.2, 23.0
 * and 26.1 are upstream releases in a virtualenv with setproctitle (so the master's argv is
 * its title and /proc/<pid>/exe names the base interpreter, not the venv). Per version, one
 * sandbox of 2 hosts under steady load serves every case in turn:
 *   an import error (refused before any signal; once, the check is the same for every strategy),
 *   and per strategy: deploy (the next release serves everywhere), never ready (rolled back by the readiness gate), and a release that imports fine but whose
 *   workers fail to boot under gunicorn (caught; the other host never touched).
 * Zero failed requests throughout. GD_GUNICORN_VERSIONS=23.0,26.1 runs a subset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TESTED_GUNICORN_VERSIONS } from '../../src/servers/gunicorn/gunicorn-versions.js';
import type { ActionResult } from '../support/run-action.js';
import { GUNICORN_VENDOR, gunicornAvailable, startServingSandbox, type AppOptions, type GunicornVersion, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostsOutput, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';
import { masterFacts, type MasterFacts } from './support/gunicorn-facts.js';

const STRATEGIES = ['usr2', 'rolling', 'hup'] as const;
const BOOT = { bootSeconds: 1 } satisfies Partial<AppOptions>;
const chosen = process.env.GD_GUNICORN_VERSIONS?.split(',').map((version) => version.trim());
const WANTED = TESTED_GUNICORN_VERSIONS.filter((version) => !chosen || chosen.includes(version));
// Upstream releases come from shared/vendor/ beside the repository (always there in CI, where a
// missing one fails the run); a checkout without it tests Debian's 20.1 and says what it skipped.
const MISSING = WANTED.filter((version) => !gunicornAvailable(version));
if (MISSING.length && process.env.CI) throw new Error(`gunicorn ${MISSING.join(', ')}: no upstream release in ${GUNICORN_VENDOR}`);
if (MISSING.length) console.warn(`versions.test.ts: skipping gunicorn ${MISSING.join(', ')}: no upstream release in ${GUNICORN_VENDOR} (set GD_GUNICORN_VENDOR)`);
const VERSIONS = WANTED.filter((version) => !MISSING.includes(version));

/** The signal each strategy sends first: none may be sent for a release the preflight refuses. */
const FIRST_SIGNAL = { usr2: /USR2 →/, rolling: /TTIN →/, hup: /HUP →/ } as const;

describe.each(VERSIONS)('gunicorn %s on 2 hosts under load', (version: GunicornVersion) => {
  let sb: Sandbox;
  /** The release every host serves between cases. */
  let serving = 'v1';
  const sources: string[] = [];
  const source = async (release: string, app: Partial<AppOptions> = {}) => {
    const dir = await releaseSource({ version: release, ...BOOT, ...app });
    sources.push(dir);
    return dir;
  };
  const deploy = async (inputs: Record<string, string>): Promise<ActionResult> => (await underLoad(sb, () => deployTo(sb, inputs))).result;
  /** The interpreter the action must find: the venv's python, or Debian's for 20.1 (from /usr/bin/gunicorn's #! line). */
  const python = () => (sb.venv ? `${sb.venv}/bin/python3` : '/usr/bin/python3');

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1', gunicorn: version, app: BOOT });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('runs the gunicorn it names, titled by setproctitle', async () => {
    const shown = (await sb.exec(1, `${python()} -c 'import gunicorn; print(gunicorn.__version__)'`)).stdout.trim();
    expect(shown.startsWith(`${version}.`), shown).toBe(true);
    expect((await masterFacts(sb, 1)).cmdline).toMatch(/^gunicorn: master \[app:application\]/);
  });

  // The import check is the same for every strategy (gunicorn's own config and app loading): once per version.
  it('refuses a release that cannot be imported before any signal', async () => {
    const release = 'import-error';
    const result = await deploy({ source: await source(release, { importError: true }), release, strategy: 'rolling' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toMatch(new RegExp(`cannot be loaded by the master's interpreter \\(${python().replace(/[.]/g, '\\.')}\\)[\\s\\S]*RuntimeError: fixture release ${release}: import error`));
    for (const first of Object.values(FIRST_SIGNAL)) expect(result.stdout).not.toMatch(first);
    await expectAllOn(sb, serving);
  });

  describe.each(STRATEGIES)('strategy %s', (strategy) => {
    it('deploys the next release: every host serves it; the checks ran with the master\'s own interpreter', async () => {
      const release = `${strategy}-ok`;
      const result = await deploy({ source: await source(release), release, strategy });
      expect(result.code, logOf(result)).toBe(0);
      expect(result.outputs).toMatchObject({ status: 'deployed', release, 'previous-release': serving });
      expect(result.stdout).toContain(`release ${release} loads with ${python()} (found from `);
      await expectAllOn(sb, release);
      serving = release;
    });

    it('rolls back a release that boots but is never ready', async () => {
      const release = `${strategy}-never`;
      const result = await deploy({ source: await source(release, { neverReady: true }), release, strategy, 'health-timeout': '5' });
      expect(result.outputs.status, logOf(result)).toBe('rolled-back');
      expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending']);
      expect(result.stdout).toMatch(/did not pass 3 checks in a row within 5s: last status 503/);
      await expectAllOn(sb, serving);
    });

    it('stops at the first host when the release imports but its workers cannot boot under gunicorn', async () => {
      const release = `${strategy}-boot`;
      const before: MasterFacts = await masterFacts(sb, 2);
      const result = await deploy({ source: await source(release, { failOnlyUnderGunicorn: true }), release, strategy, 'health-timeout': '15' });
      expect(result.code, logOf(result)).not.toBe(0);
      expect(result.stdout).toMatch(new RegExp(`release ${release} loads with`)); // the import check passed it
      expect(result.stdout).toMatch(FIRST_SIGNAL[strategy]);
      expect(hostsOutput(result)[1]?.status, logOf(result)).toBe('pending');
      // The other host was never touched.
      expect(await masterFacts(sb, 2)).toMatchObject({ pid: before.pid, alive: true, cwd: before.cwd });
      if (strategy === 'usr2') {
        // The old master never stopped: it serves the previous release again.
        expect(result.outputs.status, logOf(result)).toBe('rolled-back');
      } else {
        // A worker that cannot boot halts gunicorn: the host is down until gunicorn starts again.
        expect(result.stdout).toMatch(/exited: a new worker could not boot/);
        await restartIfDown(sb, 1, serving);
      }
      await expectAllOn(sb, serving);
    });
  });

  // Once, on the newest version: the python input replaces the search, for every check.
  it.runIf(version === '26.1')('the python input is the interpreter of the checks: a wrong one stops the deploy before any change, the right one deploys', async () => {
    const wrong = await deploy({ source: await source('py-wrong'), release: 'py-wrong', python: '/nonexistent/venv/bin/python3' });
    expect(wrong.outputs.status, logOf(wrong)).toBe('failed');
    // The import check and the readiness probe of the running release both run it, before any
    // switch; the check's error is the one reported.
    expect(wrong.stdout).toMatch(/cannot be loaded by the master's interpreter \(\/nonexistent\/venv\/bin\/python3\); nothing was switched or reloaded/);
    expect(wrong.stdout).toMatch(/\/nonexistent\/venv\/bin\/python3: (No such file or directory|not found)/);
    await expectAllOn(sb, serving);
    const right = await deploy({ source: await source('py-input'), release: 'py-input', python: python() });
    expect(right.outputs.status, logOf(right)).toBe('deployed');
    expect(right.stdout).toContain(`release py-input loads with ${python()} (found from the python input)`);
    await expectAllOn(sb, 'py-input');
    serving = 'py-input';
  });
});

/** Brings a host whose master halted back to `release`, as its operator would. */
async function restartIfDown(sb: Sandbox, host: number, release: string): Promise<void> {
  if ((await masterFacts(sb, host)).alive) return;
  const relinked = await sb.exec(host, `cd ${sb.appDir} && ln -sfn releases/${release} current.tmp && mv -T current.tmp current`);
  expect(relinked.code, relinked.stderr).toBe(0);
  await sb.startGunicorn(host);
  await sb.waitForLb();
}
