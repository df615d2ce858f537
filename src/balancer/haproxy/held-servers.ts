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
}

/** Whether there is anything to put back. */
export function holdsAnything(held: HeldServers | undefined): held is HeldServers {
  return held !== undefined && held.drained.length > 0;
}

/** The saved state's text back (undefined when empty or not ours). */
export function parseHeld(text: string): HeldServers | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<HeldServers>;
    if (typeof value.backend !== 'string' || !Array.isArray(value.drained)) return undefined;
    return { backend: value.backend, drained: value.drained.filter((server): server is string => typeof server === 'string') };
  } catch {
    return undefined;
  }
}

export interface Restored {
  /** One line per server put back. */
  restored: { server: string; line: string }[];
  /** One line per server that could not be put back, with the command to run by hand. */
  warnings: { server: string; line: string }[];
}

/** Sets every held server back to ready, all at once. Never throws. */
export async function restoreHeld(admin: AdminSocket, held: HeldServers): Promise<Restored> {
  const result: Restored = { restored: [], warnings: [] };
  await Promise.all(
    held.drained.map(async (server) => {
      const command = `set server ${held.backend}/${server} state ready`;
      try {
        await admin.expectSilent(command);
        result.restored.push({ server, line: `${server} set back to ready (this run had drained it)` });
      } catch (error) {
        result.warnings.push({ server, line: `could not set ${held.backend}/${server} back to ready (${errorMessage(error)}): it may stay drained. Run '${command}' on HAProxy's admin socket.` });
      }
    }),
  );
  return result;
}
