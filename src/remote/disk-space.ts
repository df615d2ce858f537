import { sh, type ShellFragment } from './shell-quote.js';

/** Free space of the filesystem holding a path, as `df -P` reports it. */
export interface DiskSpace {
  availableBytes: number;
  /** Where that filesystem is mounted, e.g. `/` or `/srv`. */
  mountedOn: string;
}

/**
 * `df -P -k` of the nearest existing directory at or above `path` (a failed upload may leave
 * nothing at the path itself). POSIX output: one header line, then one line per filesystem.
 */
export function diskSpaceCommand(path: string): ShellFragment {
  return sh`d=${path}; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; df -P -k "$d"`;
}

/** Reads the output of diskSpaceCommand; undefined when it is not df's. */
export function parseDiskSpace(output: string): DiskSpace | undefined {
  const line = output.trim().split('\n')[1];
  if (!line) return undefined;
  // Filesystem 1024-blocks Used Available Capacity Mounted-on; the mount point may hold spaces.
  const match = /^\S+\s+\d+\s+\d+\s+(\d+)\s+\d+%\s+(.+)$/.exec(line.trim());
  if (!match) return undefined;
  return { availableBytes: Number(match[1]) * 1024, mountedOn: match[2] ?? '' };
}
