/**
 * What a run changed on HAProxy and has not put back yet. The run puts it back itself (after each
 * host, at close, at SIGTERM); it is also saved for the post step, which puts back what a killed
 * run or an unreachable balancer left. One restore for all of them: restoreHeld().
 */
import { errorMessage } from '../../errors.js';
import type { AdminSocket } from './admin-socket.js';

export interface HeldServers {
  backend: string;
  /** Servers this run set to drain and has not set ready again. */
  drained: string[];
  /** Servers this run set below their configured weight (lb-canary-weight) and has not set back. */
  lowered: string[];
}

/** Whether there is anything to put back. */
export function holdsAnything(held: HeldServers | undefined): held is HeldServers {
  return held !== undefined && held.drained.length + held.lowered.length > 0;
}

/** The saved state's text back (undefined when empty or not ours). */
export function parseHeld(text: string): HeldServers | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<HeldServers>;
    if (typeof value.backend !== 'string' || !Array.isArray(value.drained)) return undefined;
    const names = (list: unknown): string[] => (Array.isArray(list) ? list.filter((server): server is string => typeof server === 'string') : []);
    return { backend: value.backend, drained: names(value.drained), lowered: names(value.lowered) };
  } catch {
    return undefined;
  }
}

/** What is held, in words: `app/h1 drained, app/h2 at a canary's weight`. */
export function describeHeld(held: HeldServers): string {
  return [...held.drained.map((server) => `${held.backend}/${server} drained`), ...held.lowered.map((server) => `${held.backend}/${server} at a canary's weight`)].join(', ');
}

/** The admin-socket commands that put everything held back, one per server and change. */
export function restoreCommands(held: HeldServers): { server: string; change: 'drain' | 'weight'; command: string }[] {
  return [
    ...held.drained.map((server) => ({ server, change: 'drain' as const, command: `set server ${held.backend}/${server} state ready` })),
    // Percent is of the weight in HAProxy's configuration: 100% is exactly what the server had.
    ...held.lowered.map((server) => ({ server, change: 'weight' as const, command: `set weight ${held.backend}/${server} 100%` })),
  ];
}

export interface Restored {
  /** One line per change put back. */
  restored: { server: string; change: 'drain' | 'weight'; line: string }[];
  /** One line per change that could not be put back, with the command to run by hand. */
  warnings: { server: string; change: 'drain' | 'weight'; line: string }[];
}

/** Sets every held server back to ready and full weight, all at once. Never throws. */
export async function restoreHeld(admin: AdminSocket, held: HeldServers): Promise<Restored> {
  const result: Restored = { restored: [], warnings: [] };
  await Promise.all(
    restoreCommands(held).map(async ({ server, change, command }) => {
      try {
        await admin.expectSilent(command);
        const line = change === 'drain' ? `${server} set back to ready (this run had drained it)` : `${server} set back to its full weight (this run had lowered it for the canary)`;
        result.restored.push({ server, change, line });
      } catch (error) {
        const left = change === 'drain' ? 'ready' : 'its full weight';
        const risk = change === 'drain' ? 'it may stay drained' : 'it may keep taking a small share of traffic';
        result.warnings.push({ server, change, line: `could not set ${held.backend}/${server} back to ${left} (${errorMessage(error)}): ${risk}. Run '${command}' on HAProxy's admin socket.` });
      }
    }),
  );
  return result;
}
