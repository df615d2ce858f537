/**
 * uWSGI's options as the running instance got them: its ini file (the `[uwsgi]` section) and
 * its command line, in the order uWSGI applies them. Only what the driver needs is resolved.
 */

/** One `key = value` as uWSGI saw it; flags without a value are `true`. */
export type OptionList = ReadonlyArray<readonly [string, string]>;

/** The settings that decide how the instance can be reloaded and checked. */
export interface UwsgiSettings {
  /** The ini file named on the command line, if any (as written: may be relative to the master's cwd). */
  configFile?: string;
  master: boolean;
  lazyApps: boolean;
  needApp: boolean;
  processes: number;
  masterFifo?: string;
  stats?: string;
  pidfile?: string;
  /** `home`/`virtualenv`: the instance's Python environment. */
  home?: string;
  chdir?: string;
  pythonpath: string[];
  /** How the app is found: `module` (`pkg.mod:callable`) or `wsgi-file` (a path). */
  app?: { kind: 'module' | 'file'; target: string };
}

const ALIASES: Record<string, string> = {
  p: 'processes',
  workers: 'processes',
  M: 'master',
  lazy: 'lazy-apps',
  H: 'home',
  virtualenv: 'home',
  venv: 'home',
  pyhome: 'home',
  w: 'module',
  wsgi: 'module',
  file: 'wsgi-file',
  'python-path': 'pythonpath',
  pp: 'pythonpath',
  'stats-server': 'stats',
};

/** The `[uwsgi]` section of an ini file (uWSGI reads only that section by default). */
export function parseIni(text: string): OptionList {
  const options: [string, string][] = [];
  let inSection = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) continue;
    const section = /^\[(.*)\]$/.exec(line);
    if (section) {
      inSection = section[1]?.trim() === 'uwsgi';
      continue;
    }
    if (!inSection) continue;
    const at = line.indexOf('=');
    if (at < 0) options.push([canonical(line), 'true']);
    else options.push([canonical(line.slice(0, at).trim()), line.slice(at + 1).trim()]);
  }
  return options;
}

/**
 * The command line's options, with the ini file's options spliced in where `--ini` (or a bare
 * `*.ini` argument) stands, so a later option wins as it does in uWSGI.
 */
export function optionsOf(argv: readonly string[], readIni: (path: string) => OptionList | undefined): { options: OptionList; configFile?: string } {
  const options: (readonly [string, string])[] = [];
  let configFile: string | undefined;
  const args = argv.slice(1);
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] ?? '';
    let key: string | undefined;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const at = arg.indexOf('=');
      key = at < 0 ? arg.slice(2) : arg.slice(2, at);
      if (at >= 0) value = arg.slice(at + 1);
    } else if (/^-[A-Za-z]$/.test(arg)) {
      key = arg.slice(1);
    } else if (arg.endsWith('.ini')) {
      key = 'ini';
      value = arg;
    } else {
      continue;
    }
    if (value === undefined) {
      const next = args[index + 1];
      if (next !== undefined && !next.startsWith('-')) {
        value = next;
        index += 1;
      } else {
        value = 'true';
      }
    }
    if (key === 'ini') {
      configFile = value;
      options.push(...(readIni(value) ?? []));
    } else {
      options.push([canonical(key), value]);
    }
  }
  return { options, configFile };
}

/** Resolves the options the driver needs; the last value of an option wins, `pythonpath` adds up. */
export function settingsOf(options: OptionList, configFile?: string): UwsgiSettings {
  const last = (key: string): string | undefined => [...options].reverse().find(([name]) => name === key)?.[1];
  const flag = (key: string): boolean => /^(true|1|yes|on|y)$/i.test(last(key) ?? 'false');
  const module = last('module');
  const file = last('wsgi-file');
  return {
    configFile,
    master: flag('master'),
    lazyApps: flag('lazy-apps'),
    needApp: flag('need-app'),
    processes: Number(last('processes') ?? '1') || 1,
    masterFifo: last('master-fifo'),
    stats: last('stats'),
    pidfile: last('pidfile'),
    home: last('home'),
    chdir: last('chdir'),
    pythonpath: options.filter(([name]) => name === 'pythonpath').map(([, value]) => value),
    app: module ? { kind: 'module', target: module } : file ? { kind: 'file', target: file } : undefined,
  };
}

function canonical(key: string): string {
  return ALIASES[key] ?? key;
}
