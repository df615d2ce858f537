/**
 * Which HAProxy server is which deploy host, decided before anything changes: by address
 * (the host as written in `hosts` against srv_addr of `show servers state`) unless lb-servers
 * names them by hand.
 */
import type { HostTarget } from '../config/settings.js';
import type { ServerState } from './haproxy/stat-csv.js';

export interface ServerMapping {
  /** Deploy host label → server name in the backend. */
  servers: Map<string, string>;
  /** Why a host could not be mapped; empty when every host was. */
  problems: string[];
}

/**
 * `explicit` keys may be a host's label, its address or `address:port` (as migrate-host);
 * a name given by hand must exist in the backend.
 */
export function mapHostsToServers(hosts: readonly HostTarget[], backend: string, states: readonly ServerState[], explicit?: ReadonlyMap<string, string>): ServerMapping {
  const servers = new Map<string, string>();
  const problems: string[] = [];
  const inBackend = states.filter((state) => state.backend === backend);
  const known = inBackend.map((state) => `${state.server} (${state.address})`).join(', ') || 'none';
  for (const host of hosts) {
    const keys = [host.label, host.host, `${host.host}:${host.port}`, `${host.user}@${host.host}`];
    const named = explicit ? keys.map((key) => explicit.get(key)).find((value) => value !== undefined) : undefined;
    if (explicit && explicit.size > 0) {
      if (named === undefined) problems.push(`${host.label} is not in lb-servers`);
      else if (!inBackend.some((state) => state.server === named)) problems.push(`${host.label}: server '${named}' is not in backend '${backend}' (servers: ${known})`);
      else servers.set(host.label, named);
      continue;
    }
    const matches = inBackend.filter((state) => state.address === host.host);
    if (matches.length === 1 && matches[0]) servers.set(host.label, matches[0].server);
    else if (matches.length === 0) problems.push(`${host.label}: no server of backend '${backend}' has address ${host.host} (servers: ${known}); name them with lb-servers`);
    else problems.push(`${host.label}: several servers of backend '${backend}' have address ${host.host} (${matches.map((state) => state.server).join(', ')}); name one with lb-servers`);
  }
  return { servers, problems };
}
