import pLimit from 'p-limit';
import { errorMessage } from '../errors.js';
import type { Reporter } from '../report/reporter.js';

/**
 * Runs one task per host, at most `limit` at once. While several run, each host's lines are
 * held and printed as one log group when its task ends, so a person reads host by host rather
 * than interleaved lines; a lone task logs live. Warnings always go out at once.
 */
export async function forEachHost<T>(
  items: readonly T[],
  options: { limit: number; reporter: Reporter; title: (item: T) => string; host: (item: T) => string; stopOnFailure: boolean },
  task: (item: T, reporter: Reporter) => Promise<void>,
): Promise<HostTaskResult<T>[]> {
  const { reporter } = options;
  const limit = pLimit(Math.max(1, options.limit));
  let stopped = false;
  const live = items.length === 1 || options.limit === 1;
  return Promise.all(
    items.map((item) =>
      limit(async (): Promise<HostTaskResult<T>> => {
        if (stopped) return { item, skipped: true };
        if (live) return run(item, reporter, (body) => reporter.group(options.title(item), body));
        const held = heldReporter(reporter);
        try {
          return await run(item, held, (body) => body());
        } finally {
          if (held.size() > 0) await reporter.group(options.title(item), async () => held.flush());
        }
      }),
    ),
  );

  async function run(item: T, hostReporter: Reporter, grouped: (body: () => Promise<HostTaskResult<T>>) => Promise<HostTaskResult<T>>): Promise<HostTaskResult<T>> {
    return grouped(async () => {
      try {
        await task(item, hostReporter);
        return { item };
      } catch (error) {
        if (options.stopOnFailure) stopped = true;
        hostReporter.log(options.host(item), `failed: ${errorMessage(error)}`);
        return { item, error };
      }
    });
  }
}

export interface HostTaskResult<T> {
  item: T;
  /** What the task threw. */
  error?: unknown;
  /** Not started: an earlier task failed and stopOnFailure was set. */
  skipped?: boolean;
}

/** Throws the first failure of a phase where one failure stops everything (before any switch). */
export function throwFirstFailure<T>(results: readonly HostTaskResult<T>[]): void {
  const failed = results.find((result) => result.error !== undefined);
  if (failed) throw failed.error;
}

/** A reporter that keeps a host's lines until flush(); groups inside it are flattened (runner groups cannot nest). */
function heldReporter(parent: Reporter): Reporter & { flush(): void; size(): number } {
  const lines: [string, string][] = [];
  return {
    group: (_title, body) => body(),
    log: (host, line) => void lines.push([host, line]),
    warn: (line) => parent.warn(line),
    size: () => lines.length,
    flush: () => {
      for (const [host, line] of lines) parent.log(host, line);
    },
  };
}
