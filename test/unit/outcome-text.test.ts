import { describe, expect, it } from 'vitest';
import { blameHost, durationText, failedHosts, message } from '../../src/report/outcome-text.js';
import type { DeployOutcome } from '../../src/report/reporter.js';
import { runFacts } from '../../src/report/run-links.js';

const outcome = (extra: Partial<DeployOutcome>): DeployOutcome => ({
  status: 'deployed',
  release: 'v3',
  previousRelease: 'v2',
  strategy: 'usr2',
  hosts: [
    { host: 'web1', status: 'deployed', release: 'v3', previousRelease: 'v2' },
    { host: 'web2', status: 'deployed', release: 'v3', previousRelease: 'v2' },
  ],
  ...extra,
});

describe('the message output: one line for a notification', () => {
  it.each<[string, Partial<DeployOutcome>, Parameters<typeof message>[1], string]>([
    ['a deploy', {}, 'deploy', 'graceful-deploy: deployed v3 to 2 hosts (was v2).'],
    ['a rollback by hand', { release: 'v2', previousRelease: 'v3' }, 'rollback', 'graceful-deploy: rolled back to v2 on 2 hosts (was v3).'],
    [
      'a host set aside within max-failed-hosts',
      {
        error: '[web2] did not pass',
        hosts: [
          { host: 'web1', status: 'deployed', release: 'v3' },
          { host: 'web2', status: 'rolled-back', release: 'v2', error: '[web2] did not pass' },
        ],
      },
      'deploy',
      'graceful-deploy: deployed v3 to 1 of 2 hosts (was v2); web2 failed and went back to v2.',
    ],
    [
      'a rollback after a failed gate, with its cause',
      {
        status: 'rolled-back',
        error: '[web1] did not pass 3 checks in a row within 60s: last status 503',
        hosts: [
          { host: 'web1', status: 'rolled-back', release: 'v2', error: '[web1] did not pass 3 checks in a row within 60s: last status 503' },
          { host: 'web2', status: 'pending', release: 'v3', previousRelease: 'v2' },
        ],
      },
      'deploy',
      'graceful-deploy: deploy of v3 failed on web1; every host it reached is back on v2. [web1] did not pass 3 checks in a row within 60s: last status 503',
    ],
    [
      'a failure that left a host behind',
      {
        status: 'failed',
        error: '[web1] reload failed\nNOT rolled back — check by hand: web1: rollback failed: gone',
        hosts: [{ host: 'web1', status: 'failed', error: 'rollback failed: gone' }],
      },
      'deploy',
      'graceful-deploy: deploy of v3 failed on web1; NOT put back, check by hand: web1. [web1] reload failed',
    ],
    ['an input error', { status: 'failed', release: '', previousRelease: undefined, hosts: [], error: "Invalid input 'hosts': required." }, 'deploy', "graceful-deploy: deploy failed. Invalid input 'hosts': required."],
    [
      'a cancel',
      {
        status: 'cancelled',
        error: 'cancelled by the runner',
        hosts: [
          { host: 'web1', status: 'deployed', release: 'v3', previousRelease: 'v2' },
          { host: 'web2', status: 'pending', release: 'v3', previousRelease: 'v2' },
        ],
      },
      'deploy',
      'graceful-deploy: deploy of v3 was cancelled; v3 on web1; v2 on web2. cancelled by the runner',
    ],
    ['a plan', { status: 'planned', hosts: [{ host: 'web1', status: 'planned' }] }, 'plan', 'graceful-deploy: plan only, nothing changed: v3 would replace v2 on 1 host.'],
    [
      'a re-run of a deployed release (if-current: skip): no cause, nothing failed',
      { status: 'unchanged', hosts: [{ host: 'web1', status: 'unchanged', release: 'v3' }] },
      'deploy',
      'graceful-deploy: v3 is already current and serving on 1 host: nothing was deployed.',
    ],
    ['mode: migrate, done', { status: 'migrated', hosts: [] }, 'migrate', 'graceful-deploy: migrations of v3 ran; nothing was switched or reloaded.'],
  ])('%s', (_name, extra, mode, expected) => {
    expect(message(outcome(extra), mode)).toBe(expected);
  });
});

describe('failed-hosts', () => {
  it('lists the hosts with an error, and the host a failure before the rollout names', () => {
    expect(failedHosts(outcome({}))).toEqual([]);
    const refused = outcome({ status: 'failed', hosts: [] });
    blameHost(refused, 'web2', '[web2] refusing to connect');
    expect(failedHosts(refused)).toEqual(['web2']);
    const staged = outcome({ status: 'failed', hosts: [{ host: 'web1', status: 'pending' }, { host: 'web2', status: 'pending' }] });
    blameHost(staged, 'web2', '[web2] cannot be loaded');
    expect(failedHosts(staged)).toEqual(['web2']);
    expect(staged.hosts[1]?.error).toBe('[web2] cannot be loaded');
  });
});

describe('run facts', () => {
  const env = { GITHUB_SERVER_URL: 'https://ghe.example.com/', GITHUB_REPOSITORY: 'acme/shop', GITHUB_SHA: 'abc123', GITHUB_ACTOR: 'octocat' };

  it('links the commit and the compare view on the runner', () => {
    expect(runFacts(env, outcome({}), 'deploy', 5)).toEqual({
      mode: 'deploy',
      seconds: 5,
      actor: 'octocat',
      commit: { sha: 'abc123', url: 'https://ghe.example.com/acme/shop/commit/abc123' },
      compare: { from: 'v2', to: 'v3', url: 'https://ghe.example.com/acme/shop/compare/v2...v3' },
    });
  });

  it('gives no commit for a rollback (the checkout is not what runs), and no links from a terminal', () => {
    expect(runFacts(env, outcome({ release: 'v2', previousRelease: 'v3' }), 'rollback', 5).commit).toBeUndefined();
    expect(runFacts({}, outcome({}), 'deploy', 5)).toEqual({ mode: 'deploy', seconds: 5 });
  });

  it('reads durations as a person would', () => {
    expect(durationText(8.44)).toBe('8.4 s');
    expect(durationText(72.4)).toBe('1 min 12 s');
  });
});
