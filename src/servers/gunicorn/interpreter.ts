import { joinFragments, sh, type ShellFragment } from '../../remote/shell-quote.js';

/** The Python the checks run with (import check, config read, readiness probe, Alembic), and how it was found, for the log. */
export interface Interpreter {
  python: string;
  foundBy: string;
}

/** What the host shows about the program a master runs, beyond its (possibly overwritten) argv. */
export interface InterpreterFacts {
  /** The path execve() was given when the master started (AT_EXECFN), if readable. */
  execfn?: string;
  /** The first line of that file when it is a `#!` script (a venv's bin/gunicorn). */
  shebang?: string;
  /** Virtualenvs (dirs with pyvenv.cfg) whose site-packages hold a library the master has mapped. */
  venvs: string[];
}

/** What the master looks like before its interpreter is known. */
export interface MasterProgram {
  pid: number;
  argv: string[];
  /** True when setproctitle replaced the argv with gunicorn's title. */
  titled: boolean;
  /** /proc/<pid>/exe: the base interpreter (a venv's python is a symlink to it). */
  exe: string;
}

/**
 * Reads the facts setproctitle leaves intact. It overwrites the argv and environ strings, but
 * not the execve() path the kernel stores after them (AT_EXECFN in /proc/<pid>/auxv points at
 * it): the venv's bin/gunicorn, or its bin/python after a USR2 re-exec. Reading it through
 * /proc/<pid>/mem needs the rights to trace the master (its user or root; a Yama ptrace_scope
 * of 1 or more denies it to non-root), so C extensions mapped from a venv are read as well.
 */
export function interpreterFactsCommand(pid: number): ShellFragment {
  return joinFragments(
    [
      sh`p=${pid}; a=$(od -An -tu8 -w16 -v /proc/$p/auxv 2>/dev/null | awk '$1 == 31 { print $2 }'); f=;`,
      sh`[ -n "$a" ] && f=$(dd if=/proc/$p/mem iflag=skip_bytes,count_bytes skip="$a" count=4096 bs=4096 status=none 2>/dev/null | tr '\\000' '\\n' | head -n 1);`,
      sh`case "$f" in /*) ;; ?*) f="$(readlink /proc/$p/cwd)/$f";; esac; printf 'execfn=%s\\n' "$f";`,
      sh`[ -f "$f" ] && [ "$(head -c 2 "$f")" = '#!' ] && printf 'shebang=%s\\n' "$(head -n 1 "$f")";`,
      sh`awk '{ print $6 }' /proc/$p/maps 2>/dev/null | grep -o '^/.*/lib/python3[^/]*/site-packages/' | sort -u | while read -r d; do v="\${d%/lib/python3*}"; [ -f "$v/pyvenv.cfg" ] && printf 'venv=%s\\n' "$v"; done; true`,
    ],
    ' ',
  );
}

export function parseInterpreterFacts(stdout: string): InterpreterFacts {
  const facts: InterpreterFacts = { venvs: [] };
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('=');
    const [key, value] = [line.slice(0, at), line.slice(at + 1).trim()];
    if (!value) continue;
    if (key === 'execfn') facts.execfn = value;
    else if (key === 'shebang') facts.shebang = value;
    else if (key === 'venv') facts.venvs.push(value);
  }
  return facts;
}

/**
 * Picks the interpreter of a gunicorn master, most direct evidence first. /proc/<pid>/exe is
 * the last resort: a venv's bin/python is a symlink, so exe names the base interpreter, which
 * does not see the venv's packages.
 */
export function chooseInterpreter(master: MasterProgram, facts: InterpreterFacts | undefined, configured?: string): Interpreter {
  if (configured) return { python: configured, foundBy: 'the python input' };
  const first = master.argv[0] ?? '';
  if (!master.titled && first.startsWith('/')) return { python: first, foundBy: "the master's command line" };
  const started = facts?.execfn;
  if (started?.startsWith('/')) {
    const shebang = /^#!\s*(\/\S+)/.exec(facts?.shebang ?? '')?.[1];
    // A script's #! names its interpreter; a `#!/usr/bin/env python3` line would have made env
    // exec python, so the path execve got is then python itself, as after a USR2 re-exec.
    if (shebang) return { python: shebang, foundBy: `the #! line of ${started}, the program the master was started as` };
    if (!facts?.shebang) return { python: started, foundBy: 'the program the master was started as' };
  }
  const venv = facts?.venvs[0];
  if (venv) return { python: `${venv}/bin/python`, foundBy: `the virtualenv ${venv}, where a library the master loaded lives` };
  return {
    python: master.exe,
    foundBy: `/proc/${master.pid}/exe, as no virtualenv was visible (if gunicorn runs from one, set the python input)`,
  };
}
