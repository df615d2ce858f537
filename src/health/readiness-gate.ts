import type { HealthSettings } from '../config/settings.js';
import { HealthGateError } from '../errors.js';
import { pollUntil } from '../poll.js';
import type { RemoteHost } from '../remote/remote-host.js';
import { healthProbeCommand } from './health-commands.js';

/** One answer of the readiness URL, as seen from the host. */
export interface HealthReading {
  status: number;
  /** Version named by the X-App-Version header or the JSON body's `version`. */
  version?: string;
  body: string;
}

export interface GatePassed {
  seconds: number;
  reading: HealthReading;
}

/** Parses healthProbeCommand's output. */
export function parseReading(stdout: string): HealthReading {
  const raw = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { status?: number; version?: string | null; body?: string };
  const body = raw.body ?? '';
  let version = raw.version ?? undefined;
  if (!version) {
    try {
      const json = JSON.parse(body) as { version?: unknown };
      if (typeof json.version === 'string' || typeof json.version === 'number') version = String(json.version);
    } catch {
      // Not JSON: the header is the only place a version can be.
    }
  }
  return { status: raw.status ?? 0, version, body };
}

/** Why a reading does not pass, or undefined when it does. */
export function failureOf(reading: HealthReading, expectedVersion?: string): string | undefined {
  if (reading.status < 200 || reading.status >= 300) return `status ${reading.status || 'no answer'}`;
  if (expectedVersion && reading.version !== expectedVersion) {
    return `serves version ${reading.version ?? '(none named)'}, expected ${expectedVersion}`;
  }
  return undefined;
}

/** Reads the readiness URL once. */
export async function probe(host: RemoteHost, python: string, settings: HealthSettings): Promise<HealthReading> {
  const timeout = Math.max(1, Math.min(10, settings.timeoutSeconds));
  const result = await host.exec('readiness probe', healthProbeCommand(python, settings.url, timeout), {
    timeoutSeconds: timeout + 15,
  });
  return parseReading(result.stdout);
}

/**
 * Passes after `successes` consecutive good readings within the timeout; otherwise throws a
 * HealthGateError with the last status and body.
 */
export async function waitUntilReady(
  host: RemoteHost,
  python: string,
  settings: HealthSettings,
  expectedVersion: string | undefined,
  signal?: AbortSignal,
): Promise<GatePassed> {
  const started = Date.now();
  let streak = 0;
  let last: HealthReading | undefined;
  let lastFailure = 'no reading yet';
  const passed = await pollUntil(
    async () => {
      last = await probe(host, python, settings);
      const failure = failureOf(last, expectedVersion);
      if (failure) {
        streak = 0;
        lastFailure = failure;
        return undefined;
      }
      streak += 1;
      return streak >= settings.successes ? last : undefined;
    },
    { timeoutMs: settings.timeoutSeconds * 1000, intervalMs: settings.intervalSeconds * 1000, signal, what: `pass the readiness gate on ${host.name}` },
  );
  if (!passed) {
    const body = (last?.body ?? '').trim().slice(0, 300);
    throw new HealthGateError(
      `${settings.url} did not pass ${settings.successes} checks in a row within ${settings.timeoutSeconds}s: last ${lastFailure}${body ? `, body: ${body}` : ''}`,
      host.name,
    );
  }
  return { seconds: (Date.now() - started) / 1000, reading: passed };
}
