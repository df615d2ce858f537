import type { DrainMode, ServerKind } from '../config/settings.js';

/**
 * Strategies during which the host stops answering for the whole boot (gunicorn HUP replaces
 * every worker at once; uWSGI's graceful reload re-execs everything; a uWSGI chain has a
 * capacity hole per worker): with drain: auto the balancer stops sending them traffic first.
 */
const STALLING: Readonly<Record<ServerKind, readonly string[]>> = {
  gunicorn: ['hup'],
  uwsgi: ['reload', 'chain'],
};

export function shouldDrain(mode: DrainMode, server: ServerKind, strategy: string): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return STALLING[server].includes(strategy);
}
