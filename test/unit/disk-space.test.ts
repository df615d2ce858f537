import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { diskSpaceCommand, parseDiskSpace } from '../../src/remote/disk-space.js';

describe('disk space after a failed upload', () => {
  it('builds a quoted df of the nearest existing directory', () => {
    expect(diskSpaceCommand("/srv/it's/releases").text).toBe(
      `d='/srv/it'\\''s/releases'; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; df -P -k "$d"`,
    );
  });

  it('reads df -P output, mount points with spaces included', () => {
    const output = 'Filesystem     1024-blocks    Used Available Capacity Mounted on\ntmpfs                 1024    1024         0     100% /srv/my app/releases\n';
    expect(parseDiskSpace(output)).toEqual({ availableBytes: 0, mountedOn: '/srv/my app/releases' });
    expect(parseDiskSpace('df: /nowhere: No such file or directory')).toBeUndefined();
  });

  it('works on this machine for a path that does not exist yet', () => {
    const output = execFileSync('/bin/sh', ['-c', diskSpaceCommand('/tmp/no/such/dir/yet').text], { encoding: 'utf8' });
    const space = parseDiskSpace(output);
    expect(space?.availableBytes).toBeGreaterThan(0);
    expect(space?.mountedOn).toMatch(/^\//);
  });
});
