/**
 * A cancelled run (the runner's SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that) at each
 * phase of a deploy, on 2 real hosts under load: the action ends with status `cancelled` and
 * its outputs written, every host serves one consistent release (one master, no `.2`, every
 * worker on the release `current` names), no lock is left, and the next deploy succeeds with no
 * manual step. Zero failed requests throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, sandboxInputs, type ActionResult } from '../support/run-action.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { expectOneRelease, logOf, releaseSeries, underLoad } from './support/deploy-fixture.js';

const BOOT = { bootSeconds: 2 };

describe('cancelled at each phase, on 2 hosts under load', () => {
  let sb: Sandbox;
  const sources = releaseSeries(BOOT);
  const newRelease = sources.next;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1', app: BOOT });
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  const action = (inputs: Record<string, string>, cancelAt?: RegExp): Promise<ActionResult> =>
    runAction(
      { ...sandboxInputs(sb), 'health-interval': '0.5', 'health-successes': '2', 'health-timeout': '60', ...inputs },
      { timeoutMs: 300_000, cancelWhen: cancelAt && { output: cancelAt } },
    );

  const expectConsistent = (host: number) => expectOneRelease(sb, host);

  /** Cancels a deploy at `phase`, checks what it left, then deploys again to the end. */
  async function cancelThenDeploy(phase: RegExp, inputs: Record<string, string> = {}): Promise<{ cancelled: ActionResult; served: string[] }> {
    const target = await newRelease();
    const { result: cancelled } = await underLoad(sb, () => action({ source: target.dir, release: target.version, ...inputs }, phase));
    expect(cancelled.code, logOf(cancelled)).not.toBe(0);
    expect(cancelled.outputs.status, logOf(cancelled)).toBe('cancelled');
    expect(cancelled.stdout, 'the cancel happened where intended').toMatch(phase);
    expect(cancelled.stdout + cancelled.stderr).toMatch(/cancelled by the runner; nothing new was started: .*serves/);
    // What a person reads first: which release each host serves, and the ways on.
    expect(cancelled.outputs.message).toMatch(new RegExp(`^graceful-deploy: deploy of ${target.version} was cancelled; \\S+ on root@`));
    expect(cancelled.summary).toContain('### Next steps');
    const served = [await expectConsistent(1), await expectConsistent(2)];

    const again = await newRelease();
    const { result: deployed } = await underLoad(sb, () => action({ source: again.dir, release: again.version, ...inputs }));
    expect(deployed.code, logOf(deployed)).toBe(0);
    for (const host of sb.hosts) expect(await expectConsistent(host.index)).toBe(again.version);
    return { cancelled, served };
  }

  it('while staging: nothing switched anywhere', async () => {
    const { served } = await cancelThenDeploy(/release staged in /);
    expect(new Set(served).size).toBe(1);
  });

  it('during a migration: it finishes, nothing reloads', async () => {
    const { cancelled } = await cancelThenDeploy(/Migrate on /, { 'migrate-command': 'sleep 2; echo migrated' });
    expect(cancelled.stdout).not.toMatch(/USR2 →/);
  });

  it('usr2, after USR2 before WINCH: the new master is stopped, the old one serves', async () => {
    await cancelThenDeploy(/USR2 → \d+/);
  });

  it('usr2, after WINCH before commit: the old master takes over again', async () => {
    await cancelThenDeploy(/WINCH → \d+/);
  });

  it('during the readiness gate', async () => {
    await cancelThenDeploy(/readiness gate: /);
  });

  it('rolling, mid-roll: every worker back on one release', async () => {
    await cancelThenDeploy(/TTOU → \d+/, { strategy: 'rolling' });
  });
});
