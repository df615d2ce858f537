/**
 * The benchmark's load: the same autocannon load as test/support/load.ts (fixed overall rate,
 * N connections, loopback or sandbox URL only), but with the latency of every single response kept, so
 * percentiles are exact. (autocannon's own histogram, with a rate set, "corrects" coordinated
 * omission with an expected interval of ceil(1/rate-per-connection) = 1 ms, which adds one
 * synthetic sample per millisecond of a slow response: a single 4 s stall turns into ~4000
 * samples and drags p50 to seconds. Exact latencies avoid that.)
 */
import autocannon from 'autocannon';
import { isLocalTarget } from '../test/support/load.js';

export interface MeterOptions {
  url: string;
  rate: number;
  connections: number;
  /** Hard bound: the load stops by itself after this long. */
  maxSeconds: number;
  timeoutSeconds?: number;
}

export interface MeterReport {
  /** Responses (any status) + errors + timeouts. */
  requests: number;
  /** errors + timeouts + non-2xx responses (as test/support/load.ts counts them). */
  failed: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  versions: Record<string, number>;
  /** Exact percentiles over every response, in ms. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Responses that took 1 s or more. */
  slow: number;
  durationSeconds: number;
}

export interface Meter {
  stop(): Promise<MeterReport>;
}

export function startMeter(opts: MeterOptions): Meter {
  const url = new URL(opts.url);
  if (!isLocalTarget(url)) throw new Error(`startMeter: only loopback or sandbox URLs, got ${opts.url}`);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const versions: Record<string, number> = {};
  let instance: ReturnType<typeof autocannon> | undefined;
  const finished = new Promise<MeterReport>((resolve, reject) => {
    instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        overallRate: opts.rate,
        duration: opts.maxSeconds,
        timeout: opts.timeoutSeconds ?? 10,
        requests: [
          {
            method: 'GET',
            onResponse: (status, _body, _context, headers) => {
              statuses[status] = (statuses[status] ?? 0) + 1;
              const version = Object.entries(headers).find(([name]) => name.toLowerCase() === 'x-app-version')?.[1];
              const key = (Array.isArray(version) ? version[0] : version) ?? '(none)';
              versions[key] = (versions[key] ?? 0) + 1;
            },
          },
        ],
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const sorted = [...latencies].sort((a, b) => a - b);
        const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0);
        const errors = result.errors - result.timeouts;
        resolve({
          requests: latencies.length + result.errors,
          failed: errors + result.timeouts + result.non2xx,
          errors,
          timeouts: result.timeouts,
          statuses: { ...statuses },
          versions: { ...versions },
          latencyMs: { p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), max: Math.round(sorted.at(-1) ?? 0) },
          slow: sorted.filter((ms) => ms >= 1000).length,
          durationSeconds: result.duration,
        });
      },
    );
    // Every response, whatever its status, with its own response time (ms).
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      latencies.push(responseTime);
    });
  });
  return {
    stop() {
      instance?.stop();
      return finished;
    },
  };
}
