import * as core from '@actions/core';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Inputs, Outputs, State } from './config/input-names.js';
import { parseSettings } from './config/input-helper.js';
import type { GunicornStrategy, Mode, Settings, UwsgiStrategy } from './config/settings.js';
import type { Balancer } from './balancer/balancer.js';
import { shouldDrain } from './balancer/drain-policy.js';
import { HaproxyBalancer } from './balancer/haproxy/haproxy-balancer.js';
import { deploy, DeployFailed } from './deploy.js';
import { DeployError, errorMessage } from './errors.js';
import { faultedOutcome, guardRejections } from './rejection-guard.js';
import { urlSecrets } from './health/readiness-gate.js';
import { findingAnnotations, isLintEnabled, runMigrationStep } from './migrate/index.js';
import type { RemoteHost } from './remote/remote-host.js';
import { sshConnector } from './remote/ssh-connector.js';
import { asUser } from './remote/become-remote-host.js';
import { sshRemoteHostFactory, type RemoteHostFactory } from './remote/ssh-remote-host.js';
import { layoutOf } from './release/layout.js';
import { actionReporter } from './report/action-reporter.js';
import { writeJobSummary } from './report/job-summary.js';
import { blameHost, failedHosts, message } from './report/outcome-text.js';
import { runFacts } from './report/run-links.js';
import type { DeployOutcome } from './report/reporter.js';
import { GunicornServer } from './servers/gunicorn/gunicorn-server.js';
import type { ServerDriver } from './servers/server-driver.js';
import { UwsgiServer } from './servers/uwsgi/uwsgi-server.js';

/** The action: read inputs, deploy, write outputs and the job summary, fail the step when needed. Never throws. */
export async function run(): Promise<void> {
  try {
    await deployFromInputs();
  } catch (error) {
    core.setFailed(`graceful-deploy stopped on an unexpected error: ${errorMessage(error)}`);
  }
}

async function deployFromInputs(): Promise<void> {
  const started = Date.now();
  maskSecrets();
  let settings: Settings;
  try {
    settings = parseSettings((name) => core.getInput(name), process.env, (message) => core.warning(message));
  } catch (error) {
    // Nothing connected: the outputs and the summary say which input, like any other failure.
    const mode = core.getInput(Inputs.Mode) === 'rollback' ? 'rollback' : 'deploy';
    await report({ status: 'failed', release: '', strategy: '', hosts: [], error: errorMessage(error) }, mode, started);
    core.setFailed(errorMessage(error));
    return;
  }
  core.info(`graceful-deploy: ${settings.mode} ${settings.release || '(previous release)'} to ${settings.hosts.map((host) => host.label).join(', ')} with ${settings.server}/${settings.strategy}`);
  if (!settings.ssh.knownHosts) core.warning(`${Inputs.InsecureSkipHostKeyCheck} is on: host keys are NOT verified, so a man in the middle would get your deploy key's session.`);

  const lb: { balancer?: Balancer } = {};
  const cancellation = onRunnerCancel(() => void lb.balancer?.restoreNow());
  // A rejection no code handled would exit node mid-reload (hosts half-changed, locks held): it stops the run as a cancel does instead.
  const guard = guardRejections(
    (fault) => {
      core.error(`graceful-deploy: an error no code path handled: ${errorMessage(fault)}. Stopping the run: nothing new starts, the hosts in flight are put back and the locks released.`);
      cancellation.abort();
    },
    (later) => core.error(`graceful-deploy: another error no code path handled, while the run stops: ${errorMessage(later)}`),
  );
  // One connector per run: every SSH connection (hosts and the balancer's) goes through the same jump host.
  const connector = sshConnector(settings.ssh);
  const record = mainRecord();
  let outcome: DeployOutcome;
  const connect = sshRemoteHostFactory(settings.ssh, (host, line) => actionReporter.log(host, line), connector);
  lb.balancer = balancer(settings, connect, cancellation.signal);
  try {
    outcome = await deploy(settings, {
      signal: cancellation.signal,
      token: record.token,
      progress: record.progress,
      connect,
      balancer: lb.balancer,
      server: serverDriver(settings),
      reporter: actionReporter,
      migrate: settings.migration.command ? migrationStep(settings, settings.migration.command) : undefined,
    });
  } catch (error) {
    if (error instanceof DeployFailed) outcome = error.outcome;
    else {
      // Failed before any host was inspected (a refused host key, an unreachable host).
      outcome = { status: 'failed', release: settings.release, strategy: settings.strategy, hosts: [], error: errorMessage(error) };
      if (error instanceof DeployError && error.host) blameHost(outcome, error.host, outcome.error ?? '');
    }
  }
  if (guard.fault) outcome = faultedOutcome(outcome, guard.fault);
  // deploy() returned: its own cleanup (put back, locks released) ran, so the post step has nothing to do.
  saveState(State.Finished, 'true');
  await report(outcome, settings.mode, started);
  if (outcome.status === 'unchanged') {
    core.notice(`${outcome.release} is already current and serving on every host: nothing was deployed (if-current: skip; set if-current: redeploy to reload it anyway).`);
  }
  if (outcome.status === 'failed' || outcome.status === 'rolled-back' || outcome.status === 'cancelled') {
    const prefix = { 'rolled-back': 'Deploy failed and every touched host was rolled back', cancelled: 'Deploy cancelled', failed: 'Deploy failed' }[outcome.status];
    core.setFailed(`${prefix}: ${outcome.error ?? 'unknown error'}`);
  }
  cancellation.dispose();
  guard.dispose();
}

/**
 * The runner cancels a step with SIGINT, then SIGTERM 7.5 s later, then kills it 2.5 s after
 * that. A listener replaces node's default exit: the deploy stops starting new work, finishes
 * the host in flight, releases its locks and writes its outputs in that time.
 */
function onRunnerCancel(lastChance: () => void): { signal: AbortSignal; abort(): void; dispose(): void } {
  const controller = new AbortController();
  const cancel = (name: NodeJS.Signals) => {
    if (!controller.signal.aborted) core.warning(`${name} received: the run is being cancelled. Nothing new starts; the host in flight is put in order and the locks released.`);
    controller.abort();
  };
  const onInt = () => cancel('SIGINT');
  // SIGTERM: 2.5 s before the kill; what must not be left behind (a drained server) goes now.
  const onTerm = () => {
    cancel('SIGTERM');
    lastChance();
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** The load balancer named by lb, undefined when there is none. */
function balancer(settings: Settings, connect: RemoteHostFactory, signal: AbortSignal): Balancer | undefined {
  const lb = settings.balancer;
  if (!lb) return undefined;
  return new HaproxyBalancer({
    settings: lb,
    drain: shouldDrain(lb.drain, settings.server, settings.strategy),
    connect,
    upTimeoutSeconds: settings.health.timeoutSeconds,
    log: (line) => actionReporter.log(lb.host.label, line),
    warn: (line) => actionReporter.warn(`[${lb.host.label}] ${line}`),
    signal,
    // What is drained stays known to the post step until it is ready again (a kill, a balancer out of reach).
    remember: (held) => saveState(State.LbHeld, JSON.stringify(held)),
  });
}

/**
 * What the post step needs if this step dies (SIGKILL, the runner gone): the lock token and each
 * host's phase, saved as they change. Never a secret: the post step reads its inputs again.
 */
function mainRecord(): { token: string; progress: (host: string, phase: string) => void } {
  const token = randomBytes(6).toString('hex');
  const phases: Record<string, string> = {};
  saveState(State.Token, token);
  return {
    token,
    progress: (host, phase) => {
      phases[host] = phase;
      saveState(State.Phases, JSON.stringify(phases));
    },
  };
}

/** core.saveState on the runner (GITHUB_STATE is set); nothing in the terminal form, which has no post step. */
export function saveState(name: string, value: string): void {
  if (process.env.GITHUB_STATE) core.saveState(name, value);
}

/** The driver of the configured server, acting as the become user when there is one. */
export function serverDriver(settings: Settings): ServerDriver {
  return asUser(driverOf(settings), settings.become);
}

function driverOf(settings: Settings): ServerDriver {
  const common = { pidfile: settings.pidfile, appDir: settings.appDir, reloadTimeoutSeconds: settings.reloadTimeoutSeconds, appSpec: settings.wsgiApp };
  if (settings.server === 'uwsgi') return new UwsgiServer({ ...common, switchLog: layoutOf(settings.appDir).switchLog, strategy: settings.strategy as UwsgiStrategy });
  return new GunicornServer({ ...common, service: settings.service, switchLog: layoutOf(settings.appDir).switchLog, strategy: settings.strategy as GunicornStrategy, python: settings.python, health: settings.health });
}

/**
 * Registers secrets with the runner before anything could print them: key material (each line
 * too: the runner masks line by line) and the credentials of a health-url such as
 * `https://user:token@host/ready`, which a failing probe may echo.
 */
function maskSecrets(): void {
  for (const name of [Inputs.SshKey, Inputs.SshKeyPassphrase, Inputs.JumpSshKey]) {
    const value = core.getInput(name);
    if (!value) continue;
    core.setSecret(value);
    for (const line of value.split(/\r?\n/)) if (line.trim().length > 8) core.setSecret(line.trim());
  }
  for (const secret of urlSecrets(core.getInput(Inputs.HealthUrl))) core.setSecret(secret);
}

/** Outputs, annotations and the job summary of a run that started at `started` (ms). */
async function report(outcome: DeployOutcome, mode: Mode, started: number): Promise<void> {
  const facts = runFacts(process.env, outcome, mode, (Date.now() - started) / 1000);
  core.setOutput(Outputs.Status, outcome.status);
  core.setOutput(Outputs.Release, outcome.release);
  core.setOutput(Outputs.PreviousRelease, outcome.previousRelease ?? '');
  core.setOutput(Outputs.RollbackTarget, outcome.rollbackTarget ?? '');
  core.setOutput(Outputs.Hosts, JSON.stringify(outcome.hosts));
  core.setOutput(Outputs.Duration, String(Math.round(facts.seconds * 10) / 10));
  core.setOutput(Outputs.FailedHosts, failedHosts(outcome).join(', '));
  core.setOutput(Outputs.Message, message(outcome, mode));
  const migration = outcome.migration;
  core.setOutput(Outputs.MigrationRevisionBefore, migration?.revisionBefore ?? '');
  core.setOutput(Outputs.MigrationRevisionAfter, migration?.revisionAfter ?? '');
  core.setOutput(Outputs.MigrationFindings, JSON.stringify(migration?.findings ?? []));
  for (const annotation of findingAnnotations(migration?.findings ?? [], sourcePrefix())) {
    const properties = { title: annotation.title, file: annotation.file, startLine: annotation.startLine };
    if (annotation.level === 'error') core.error(annotation.message, properties);
    else if (annotation.level === 'warning') core.warning(annotation.message, properties);
    else core.notice(annotation.message, properties);
  }
  if (process.env.GITHUB_STEP_SUMMARY) {
    await writeJobSummary(outcome, facts).catch((error: unknown) => core.warning(`could not write the job summary: ${errorMessage(error)}`));
  }
}

/** The migration step with this run's settings, for deploy() to call on the migrate host. */
function migrationStep(settings: Settings, command: string) {
  return (host: RemoteHost, python: string, releaseDir: string, log: (line: string) => void) =>
    runMigrationStep(host, {
      releaseDir,
      migrateCommand: command,
      lint: isLintEnabled(settings.migration.lint, command),
      allowUnsafe: settings.migration.lint === 'warn',
      lockTimeoutSeconds: settings.migration.lockTimeoutSeconds,
      python,
      log,
    });
}

/** Where the uploaded source sits in the repository, so annotations point at the revision files. */
function sourcePrefix(): string {
  const source = core.getInput(Inputs.Source) || '.';
  return path.isAbsolute(source) ? path.relative(process.env.GITHUB_WORKSPACE ?? process.cwd(), source) : source;
}
