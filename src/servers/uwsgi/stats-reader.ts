import type { RemoteHost } from '../../remote/remote-host.js';
import { sh, type ShellFragment } from '../../remote/shell-quote.js';

/** One worker as the stats server reports it. */
export interface WorkerStats {
  /** Worker slot, 1-based; a respawned worker keeps its slot. */
  id: number;
  pid: number;
  accepting: boolean;
  /** Apps loaded in the worker: 0 means "no app loaded" (it serves only errors). */
  apps: number;
  respawnCount: number;
  status: string;
}

export interface InstanceStats {
  /** The master's pid, as uWSGI itself reports it. */
  pid: number;
  workers: WorkerStats[];
}

// The stats server writes one JSON document and closes; a unix path, `@abstract` or host:port.
const READ_STATS = [
  'import json, socket, sys',
  'a = sys.argv[1]',
  'if a.startswith("/") or a.startswith("@"):',
  '    s = socket.socket(socket.AF_UNIX)',
  '    s.settimeout(5)',
  '    s.connect("\\0" + a[1:] if a.startswith("@") else a)',
  'else:',
  '    h, _, p = a.rpartition(":")',
  '    s = socket.create_connection((h or "127.0.0.1", int(p)), 5)',
  'data = b""',
  'while True:',
  '    chunk = s.recv(65536)',
  '    if not chunk:',
  '        break',
  '    data += chunk',
  'j = json.loads(data.decode("utf-8", "replace"))',
  'ws = [{"id": w.get("id"), "pid": w.get("pid"), "accepting": w.get("accepting"), "apps": len(w.get("apps") or []), "respawn_count": w.get("respawn_count"), "status": w.get("status")} for w in j.get("workers", [])]',
  'print(json.dumps({"pid": j.get("pid"), "workers": ws}))',
].join('\n');

/** Reads the stats server with the instance's Python and prints a reduced JSON document. */
export function readStatsCommand(python: string, address: string): ShellFragment {
  return sh`${python} -c ${READ_STATS} ${address}`;
}

/** Parses readStatsCommand's output; undefined when it is not a stats document. */
export function parseStats(stdout: string): InstanceStats | undefined {
  try {
    const json = JSON.parse(stdout.trim().split('\n').pop() ?? '') as {
      pid?: number;
      workers?: { id?: number; pid?: number; accepting?: number; apps?: number; respawn_count?: number; status?: string }[];
    };
    if (typeof json.pid !== 'number' || !Array.isArray(json.workers)) return undefined;
    return {
      pid: json.pid,
      workers: json.workers.map((worker, index) => ({
        id: worker.id ?? index + 1,
        pid: worker.pid ?? 0,
        accepting: Boolean(worker.accepting),
        apps: worker.apps ?? 0,
        respawnCount: worker.respawn_count ?? 0,
        status: worker.status ?? '',
      })),
    };
  } catch {
    return undefined;
  }
}

/**
 * The instance's stats, or undefined while the stats server does not answer (a master in the
 * middle of a graceful reload re-executes itself and opens it again).
 */
export async function readStats(host: RemoteHost, python: string, address: string): Promise<InstanceStats | undefined> {
  const result = await host.exec('read the uWSGI stats server', readStatsCommand(python, address), { allowFailure: true, timeoutSeconds: 15 });
  return result.code === 0 ? parseStats(result.stdout) : undefined;
}
