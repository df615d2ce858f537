import { describe, expect, it } from 'vitest';
import { chooseInterpreter, interpreterFactsCommand, parseInterpreterFacts, type MasterProgram } from '../../src/servers/gunicorn/interpreter.js';

const titled: MasterProgram = { pid: 4242, argv: ['gunicorn: master [app:application]'], titled: true, exe: '/usr/bin/python3.11' };

describe("finding a gunicorn master's interpreter", () => {
  it('the python input wins over everything the host shows', () => {
    const facts = parseInterpreterFacts('execfn=/srv/venv/bin/gunicorn\nshebang=#!/srv/venv/bin/python3\n');
    expect(chooseInterpreter(titled, facts, '/opt/py/bin/python')).toEqual({ python: '/opt/py/bin/python', foundBy: 'the python input' });
  });

  it("a visible command line names it (argv[0] keeps the venv's path)", () => {
    const plain = { ...titled, argv: ['/srv/venv/bin/python3', '/srv/venv/bin/gunicorn', 'app:application'], titled: false };
    expect(chooseInterpreter(plain, undefined)).toEqual({ python: '/srv/venv/bin/python3', foundBy: "the master's command line" });
  });

  it('with the argv overwritten: the #! line of the venv script the master was started as', () => {
    const facts = parseInterpreterFacts('execfn=/tmp/gd-x/venv-gunicorn-26.1/bin/gunicorn\nshebang=#!/tmp/gd-x/venv-gunicorn-26.1/bin/python3\n');
    expect(chooseInterpreter(titled, facts)).toEqual({
      python: '/tmp/gd-x/venv-gunicorn-26.1/bin/python3',
      foundBy: 'the #! line of /tmp/gd-x/venv-gunicorn-26.1/bin/gunicorn, the program the master was started as',
    });
    // Debian's script, with a space after #!
    expect(chooseInterpreter(titled, parseInterpreterFacts('execfn=/usr/bin/gunicorn\nshebang=#! /usr/bin/python3 -s\n')).python).toBe('/usr/bin/python3');
  });

  it('after a USR2 re-exec (or `python -m gunicorn`, or a #!/usr/bin/env line) the program started is python itself', () => {
    expect(chooseInterpreter(titled, parseInterpreterFacts('execfn=/srv/venv/bin/python3\n'))).toEqual({ python: '/srv/venv/bin/python3', foundBy: 'the program the master was started as' });
  });

  it('without the start path (no right to read it): a virtualenv a mapped C extension lives in', () => {
    const facts = parseInterpreterFacts('execfn=\nvenv=/srv/app/venv\n');
    expect(chooseInterpreter(titled, facts)).toEqual({ python: '/srv/app/venv/bin/python', foundBy: 'the virtualenv /srv/app/venv, where a library the master loaded lives' });
  });

  it('else /proc/<pid>/exe, saying that a virtualenv would be missed and what to do', () => {
    const found = chooseInterpreter(titled, parseInterpreterFacts('execfn=\n'));
    expect(found.python).toBe('/usr/bin/python3.11');
    expect(found.foundBy).toMatch(/^\/proc\/4242\/exe, as no virtualenv was visible \(if gunicorn runs from one, set the python input\)$/);
    // A script whose #! line names no absolute interpreter tells nothing.
    expect(chooseInterpreter(titled, parseInterpreterFacts('execfn=/srv/run.sh\nshebang=#!python\n')).python).toBe('/usr/bin/python3.11');
  });

  it('reads auxv, mem, the script head and maps of that pid only', () => {
    const text = interpreterFactsCommand(4242).text;
    expect(text).toMatch(/^p=4242; /);
    expect(text).toContain("awk '$1 == 31 { print $2 }'");
    expect(text).toContain('dd if=/proc/$p/mem iflag=skip_bytes,count_bytes skip="$a"');
    expect(text).toContain('v="${d%/lib/python3*}"; [ -f "$v/pyvenv.cfg" ]');
  });
});
