import type { GunicornStrategy } from '../../config/settings.js';
import type { GunicornConfig } from './gunicorn-commands.js';
import type { GunicornMaster } from './master-check.js';
import { problemText, usr2UnitProblem, type StrategyProblem, type UnitFacts } from './systemd-unit.js';

/** The strategies that reload (auto picks one of them per host). */
export type ReloadStrategy = Exclude<GunicornStrategy, 'auto'>;

/** The strategy a host gets, and why (for the log), or why none can work there. */
export type StrategyChoice = { strategy: ReloadStrategy; why: string } | { problem: string };

/**
 * Why a strategy cannot do its job with this gunicorn, or undefined when it can. Checked
 * before anything is switched, because each of these fails in a way that hurts:
 * - HUP and TTIN fork workers from the master, so with preload_app they keep serving the
 *   code the master imported at start: the deploy would "succeed" with old code.
 * - WINCH is ignored unless gunicorn daemonized itself, so USR2 could never retire the old
 *   workers (and a supervisor restarts a foreground master that exits).
 * - Under a systemd service (`unit`), USR2 works only where systemd can follow the new master
 *   (systemd-unit.ts): elsewhere the commit loses systemd its main pid, and its cgroup kill
 *   takes the new master down after the gate passed: the host would go dark after a
 *   "successful" deploy.
 */
export function strategyProblem(strategy: ReloadStrategy, config: GunicornConfig | undefined, master: GunicornMaster, unit?: UnitFacts): string | undefined {
  const problem = problemOf(strategy, config, master, unit);
  return problem && problemText(problem);
}

function problemOf(strategy: ReloadStrategy, config: GunicornConfig | undefined, master: GunicornMaster, unit?: UnitFacts): StrategyProblem | undefined {
  if ((strategy === 'hup' || strategy === 'rolling') && config?.preload_app) {
    return {
      reason: `preload_app is on: ${strategy === 'hup' ? 'HUP' : 'TTIN'} forks workers from the master's already-loaded code, so the new release would never be served.`,
      instead: 'Use strategy: usr2.',
    };
  }
  // Only a config read with the master's own arguments knows its pidfile (a --pid on the command line wins over the file).
  const unitProblem = strategy === 'usr2' && unit ? usr2UnitProblem(unit, config?.source === 'argv' ? config.pidfile : undefined) : undefined;
  if (unitProblem) return { ...unitProblem, reason: `gunicorn runs in the systemd service ${unit?.name}. ${unitProblem.reason}` };
  // --daemon is often on the command line; without the master's arguments the process tree tells.
  const daemonized = config?.source === 'argv' ? config.daemon : master.daemonized;
  if (strategy === 'usr2' && !daemonized) {
    return {
      reason: 'gunicorn runs in the foreground (not daemonized): it ignores WINCH, so USR2 cannot retire the old workers, and a supervisor would restart the old master when it exits.',
      instead: 'Use strategy: rolling (or hup).',
      change: 'For usr2, run gunicorn with daemon = True.',
    };
  }
  return undefined;
}

/**
 * The strategy for this host: the one asked for when it can work here, or, for `auto`, usr2
 * where it is safe (a daemonized master that systemd, if any, can follow), otherwise rolling.
 * With preload_app on and usr2 impossible, no strategy would serve the new code: whatever was
 * asked for, one error naming the two real ways out (never "use the other strategy").
 */
export function chooseStrategy(asked: GunicornStrategy, config: GunicornConfig | undefined, master: GunicornMaster, unit?: UnitFacts): StrategyChoice {
  const usr2Problem = problemOf('usr2', config, master, unit);
  if (usr2Problem && config?.preload_app) {
    const none =
      'no strategy can serve the new release here: preload_app is on, so rolling and hup would keep serving the code the master loaded when it started, ' +
      `and usr2 cannot work: ${usr2Problem.reason} The ways out: turn preload_app off (then rolling works), or make usr2 possible.${usr2Problem.change ? ` ${usr2Problem.change}` : ''}`;
    return { problem: asked === 'auto' ? none : `strategy '${asked}' cannot work here: ${none}` };
  }
  if (asked !== 'auto') {
    const problem = strategyProblem(asked, config, master, unit);
    return problem ? { problem: `strategy '${asked}' cannot work here: ${problem}` } : { strategy: asked, why: 'as configured' };
  }
  if (!usr2Problem) {
    const followed = unit ? `, and systemd follows it through ${unit.name}'s PIDFile=` : '';
    return { strategy: 'usr2', why: `the master is daemonized (WINCH retires its workers)${followed}` };
  }
  return { strategy: 'rolling', why: `usr2 cannot work here: ${problemText(usr2Problem)}` };
}
