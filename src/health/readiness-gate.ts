import type { HealthSettings } from '../config/settings.js';
import { HealthGateError } from '../errors.js';
import { pollUntil } from '../poll.js';
import type { RemoteHost } from '../remote/remote-host.js';
import { healthProbe } from './health-commands.js';

/** One answer of the readiness URL, as seen from the host. */
export interface HealthReading {
  status: number;
  /** Version named by the X-App-Version header or the JSON body's `version`. */
  version?: string;
  /** Where a redirect (3xx) points: its Location header. */
  location?: string;
  body: string;
}

export interface GatePassed {
  seconds: number;
  reading: HealthReading;
}

/**
 * health-url as logs and errors show it: user and password replaced by `***` (main.ts also
 * masks them with core.setSecret, for whatever else might echo the URL).
 */
export function redactedUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

/** The parts of health-url that are secret: its userinfo, raw and decoded. */
export function urlSecrets(url: string): string[] {
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url)?.[1];
  if (!userinfo) return [];
  const [user = '', password = ''] = userinfo.split(/:(.*)/s);
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  // A lone user name in a URL is a token; with a password, the user name is not secret on its own.
  const parts = password ? [userinfo, password, decode(password)] : [user, decode(user)];
  try {
    // parseSettings keeps the URL as `new URL` serializes it, which may percent-encode differently.
    const parsed = new URL(url);
    parts.push(parsed.password || parsed.username);
  } catch {
    // Not a URL: parseSettings rejects it before anything is logged.
  }
  return [...new Set(parts.filter((part) => part.length > 0))];
}

/** Parses healthProbe's output: its last reading. */
export function parseReading(stdout: string): HealthReading {
  return readingOf(stdout.trim().split('\n').pop() ?? '{}');
}

/** Parses each reading of a burst (healthProbe with a count), in order. */
export function parseReadings(stdout: string): HealthReading[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map(readingOf);
}

function readingOf(line: string): HealthReading {
  const raw = JSON.parse(line) as { status?: number; version?: string | null; location?: string | null; body?: string };
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
  return { status: raw.status ?? 0, version, body, ...(raw.location ? { location: raw.location } : {}) };
}

/** Whether the answer is a redirect, which the probe never follows: no later reading will pass. */
export function isRedirect(reading: HealthReading): boolean {
  return reading.status >= 300 && reading.status < 400;
}

/**
 * What to tell a person whose readiness URL redirects (Django's SECURE_SSL_REDIRECT, a
 * Host-based redirect): where it went, and the inputs that fix it.
 */
export function redirectMessage(url: string, reading: HealthReading): string {
  const where = reading.location ? `to ${reading.location.slice(0, 200)}` : 'without a Location';
  const path = httpsRedirectOfPath(url, reading.location);
  const exempt =
    path === undefined
      ? ''
      : ` The app sends this path to https (Django's SECURE_SSL_REDIRECT does): exempt it, e.g. SECURE_REDIRECT_EXEMPT = [r"^${path.slice(1).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$"] in Django's settings.`;
  return (
    `${redactedUrl(url)} answered ${reading.status}, a redirect ${where}; the readiness probe does not follow redirects, so it cannot pass.${exempt} ` +
    `Set health-url to the URL the app answers itself on the host (https only if gunicorn serves TLS), or, when the app redirects because of the Host it sees, set health-host to the name it serves.`
  );
}

/** The path of `url` when `location` sends it to https unchanged, else undefined. */
function httpsRedirectOfPath(url: string, location: string | undefined): string | undefined {
  if (!location) return undefined;
  try {
    const from = new URL(url);
    const to = new URL(location, from);
    return to.protocol === 'https:' && from.protocol !== 'https:' && to.pathname === from.pathname ? from.pathname : undefined;
  } catch {
    return undefined;
  }
}

/** Why a reading does not pass, or undefined when it does. */
export function failureOf(reading: HealthReading, expectedVersion?: string): string | undefined {
  if (isRedirect(reading)) return `status ${reading.status}, redirected ${reading.location ? `to ${reading.location.slice(0, 200)}` : 'without a Location'} (redirects are not followed)`;
  // Django answers 400 to a Host header that is not in ALLOWED_HOSTS (here 127.0.0.1 or localhost).
  if (reading.status === 400) return 'status 400 (if the app checks the Host header, as Django\'s ALLOWED_HOSTS does, set health-host)';
  if (reading.status < 200 || reading.status >= 300) return `status ${reading.status || 'no answer'}`;
  if (expectedVersion && reading.version !== expectedVersion) {
    return `serves version ${reading.version ?? '(none named)'}, expected ${expectedVersion}`;
  }
  return undefined;
}

/** Seconds one reading may take: health-timeout, kept between 1 and 10. */
function readingTimeout(settings: HealthSettings): number {
  return Math.max(1, Math.min(10, settings.timeoutSeconds));
}

/** Reads the readiness URL once. */
export async function probe(host: RemoteHost, python: string, settings: HealthSettings): Promise<HealthReading> {
  const timeout = readingTimeout(settings);
  const { command, stdin } = healthProbe(python, settings, timeout);
  const result = await host.exec('readiness probe', command, { stdin, timeoutSeconds: timeout + 15 });
  return parseReading(result.stdout);
}

/**
 * Reads the readiness URL up to `count` times, health-interval apart, in one Python start on the
 * host (a probe process per reading would cost the host a Python start every interval); the
 * burst ends early at an answer that is not 2xx.
 */
export async function probeBurst(host: RemoteHost, python: string, settings: HealthSettings, count: number): Promise<HealthReading[]> {
  const timeout = readingTimeout(settings);
  const { command, stdin } = healthProbe(python, settings, timeout, count, settings.intervalSeconds);
  const result = await host.exec('readiness probe', command, { stdin, timeoutSeconds: count * (timeout + settings.intervalSeconds) + 15 });
  const readings = parseReadings(result.stdout);
  if (!readings.length) throw new HealthGateError(`the readiness probe printed no reading: ${(result.stderr || result.stdout).trim().slice(0, 300)}`, host.name);
  return readings;
}

/** Between failing bursts the gate waits health-interval, or a twentieth of the time waited so far if longer. */
const GATE_STRETCH = 0.05;

/**
 * Passes after `successes` consecutive good readings, health-interval apart, within the
 * timeout; otherwise throws a HealthGateError with the last status and body. The readings a
 * streak still needs are taken in one burst (one Python start on the host, not one each); a
 * failing reading ends the burst, and the next starts health-interval later.
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
      for (const reading of await probeBurst(host, python, settings, settings.successes - streak)) {
        last = reading;
        // A redirect will not go away by waiting: fail now, saying where it went.
        if (isRedirect(reading)) throw new HealthGateError(redirectMessage(settings.url, reading), host.name);
        const failure = failureOf(reading, expectedVersion);
        if (failure) {
          streak = 0;
          lastFailure = failure;
          continue;
        }
        streak += 1;
        if (streak >= settings.successes) return reading;
      }
      return undefined;
    },
    // A host still booting (hup, a slow app) is probed less often the longer it takes: a probe
    // is a Python start on the host, which would otherwise compete with the boot it waits for.
    { timeoutMs: settings.timeoutSeconds * 1000, intervalMs: settings.intervalSeconds * 1000, stretch: GATE_STRETCH, signal, what: `pass the readiness gate on ${host.name}` },
  );
  if (!passed) {
    const body = (last?.body ?? '').trim().slice(0, 300);
    throw new HealthGateError(
      `${redactedUrl(settings.url)} did not pass ${settings.successes} checks in a row within ${settings.timeoutSeconds}s: last ${lastFailure}${body ? `, body: ${body}` : ''}`,
      host.name,
    );
  }
  return { seconds: (Date.now() - started) / 1000, reading: passed };
}
