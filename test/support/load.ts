/**
 * Steady HTTP load for zero-downtime assertions: a fixed request rate through the sandbox's
 * load balancer, counting failures and which release (X-App-Version) answered.
 */
import autocannon from 'autocannon';

export interface LoadOptions {
  /**
   * Must be a loopback URL or a sandbox address (10.200-254.x.x, create-net.sh's range: an LB
   * host's frontend on the sandbox bridge): load never leaves this machine.
   */
  url: string;
  /** Requests per second over all connections; default 100. */
  rate?: number;
  /** Default 10. */
  connections?: number;
  /** Hard bound: the load stops by itself after this long; default 600. */
  maxSeconds?: number;
  /** A request without an answer after this long counts as a timeout; default 10. */
  timeoutSeconds?: number;
}

export interface LoadReport {
  /** Requests that ended: every response, whatever its status, plus errors and timeouts. */
  requests: number;
  /** errors + timeouts + non2xx. */
  failed: number;
  non2xx: number;
  /** Connection errors other than timeouts (refused, reset, closed without answer). */
  errors: number;
  timeouts: number;
  /** Milliseconds. */
  latency: { p50: number; p99: number; max: number };
  /** Responses per X-App-Version header value; responses without it count under '(none)'. */
  versions: Record<string, number>;
  /** Responses per backend server (X-Backend-Server, set by the sandbox's HAProxy), e.g. { h1: 250, h2: 250 }. */
  servers: Record<string, number>;
  /** Responses per HTTP status, e.g. { '200': 498, '503': 2 }. */
  statuses: Record<string, number>;
  durationSeconds: number;
}

export interface LoadRun {
  /** Stops the load (if still running) and reports. */
  stop(): Promise<LoadReport>;
  /** Settles when the load ends, by stop() or after maxSeconds. */
  readonly finished: Promise<LoadReport>;
}

/**
 * Whether load may go to `url`: loopback, or a sandbox address (10.200-254.x.x, create-net.sh's
 * range, e.g. an LB host's frontend on the sandbox bridge). Load never leaves this machine.
 */
export function isLocalTarget(url: URL): boolean {
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || /^10\.(2[0-4]\d|25[0-4])\.\d+\.\d+$/.test(url.hostname);
}

export function startLoad(opts: LoadOptions): LoadRun {
  const url = new URL(opts.url);
  if (!isLocalTarget(url)) {
    throw new Error(`startLoad: only loopback or sandbox URLs may be loaded, got ${opts.url}`);
  }
  const rate = opts.rate ?? 100;
  const connections = opts.connections ?? 10;
  const maxSeconds = opts.maxSeconds ?? 600;
  if (!(rate > 0) || !(connections > 0) || !(maxSeconds > 0)) {
    throw new Error(`startLoad: rate, connections and maxSeconds must be > 0 (got ${rate}, ${connections}, ${maxSeconds})`);
  }

  const versions: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  const servers: Record<string, number> = {};
  let responses = 0;

  let instance: ReturnType<typeof autocannon> | undefined;
  const finished = new Promise<LoadReport>((resolve, reject) => {
    instance = autocannon(
      {
        url: opts.url,
        connections,
        overallRate: rate,
        duration: maxSeconds,
        timeout: opts.timeoutSeconds ?? 10,
        requests: [
          {
            method: 'GET',
            onResponse: (status, _body, _context, headers) => {
              responses++;
              statuses[status] = (statuses[status] ?? 0) + 1;
              const version = headerValue(headers, 'x-app-version') ?? '(none)';
              versions[version] = (versions[version] ?? 0) + 1;
              const server = headerValue(headers, 'x-backend-server') ?? '(none)';
              servers[server] = (servers[server] ?? 0) + 1;
            },
          },
        ],
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        // autocannon's `errors` includes timeouts; report them apart so failed is a plain sum.
        const errors = result.errors - result.timeouts;
        resolve({
          requests: responses + result.errors,
          failed: errors + result.timeouts + result.non2xx,
          non2xx: result.non2xx,
          errors,
          timeouts: result.timeouts,
          latency: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
          versions: { ...versions },
          servers: { ...servers },
          statuses: { ...statuses },
          durationSeconds: result.duration,
        });
      },
    );
  });

  return {
    finished,
    stop() {
      instance?.stop();
      return finished;
    },
  };
}

/** Header names keep the server's case: match them case-insensitively. */
function headerValue(headers: Record<string, string | string[]>, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}
