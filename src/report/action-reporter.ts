import * as core from '@actions/core';
import type { Reporter } from './reporter.js';

/** Reports through the runner's log: one group per phase, host-prefixed lines, warnings as annotations. */
export const actionReporter: Reporter = {
  group: (title, body) => core.group(title, body),
  log: (host, line) => {
    for (const part of line.split('\n')) core.info(`[${host}] ${part}`);
  },
  warn: (line) => core.warning(line),
};
