import { describe, expect, it } from 'vitest';

import {
  REVISION_FILES_SCRIPT,
  currentCommand,
  headsCommand,
  migrateCommand,
  revisionFilesCommand,
  upgradeSqlCommand,
  type AlembicTarget,
} from '../../../src/migrate/alembic-commands.js';
import { RENDER_OFFLINE_SCRIPT } from '../../../src/migrate/render-offline-script.js';
import { quote } from '../../../src/remote/shell-quote.js';

/** The render script as the shell receives it: one quoted word. */
const script = quote(RENDER_OFFLINE_SCRIPT);

const target: AlembicTarget = {
  releaseDir: '/srv/app/releases/v1.2.3',
  python: '/srv/app/venv/bin/python',
  globalArgs: [],
  configFile: null,
  section: null,
};

describe('alembic command lines', () => {
  it('runs alembic as a module of the given interpreter, in the release directory', () => {
    expect(headsCommand(target).text).toBe('cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -m alembic heads');
    expect(currentCommand(target).text).toBe('cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -m alembic current');
  });

  it('repeats the global options of the migrate command, quoted', () => {
    const withOptions = { ...target, globalArgs: ['-c', 'db/alembic prod.ini', '-x', 'tenant=a b'] };
    expect(headsCommand(withOptions).text).toBe(
      "cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -m alembic -c 'db/alembic prod.ini' -x 'tenant=a b' heads",
    );
  });

  it('renders the pending range as SQL through the render script, with the global options', () => {
    const withOptions = { ...target, globalArgs: ['-c', 'db/alembic prod.ini'] };
    expect(upgradeSqlCommand(withOptions, 'p01', 'p15').text).toBe(
      `cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -c ${script} -c 'db/alembic prod.ini' upgrade p01:p15 --sql`,
    );
  });

  it('renders the pending range as SQL, or everything from an empty database', () => {
    expect(upgradeSqlCommand(target, 'p01', 'p15').text).toBe(
      `cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -c ${script} upgrade p01:p15 --sql`,
    );
    expect(upgradeSqlCommand(target, null, 'p15').text).toBe(
      `cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -c ${script} upgrade p15 --sql`,
    );
  });

  it('quotes a hostile release directory and revision ids', () => {
    const hostile = { ...target, releaseDir: "/srv/app/releases/x'; rm -rf / #" };
    expect(upgradeSqlCommand(hostile, '$(id)', 'p2').text).toBe(
      `cd '/srv/app/releases/x'\\''; rm -rf / #' && /srv/app/venv/bin/python -c ${script} upgrade '$(id):p2' --sql`,
    );
  });

  it('locates revision files with a python snippet: config file, section, revision ids', () => {
    const command = revisionFilesCommand({ ...target, configFile: 'db/alembic.ini', section: 'tenant' }, ['p02', 'p03']);
    expect(command.text).toBe(
      `cd /srv/app/releases/v1.2.3 && /srv/app/venv/bin/python -c ${quote(REVISION_FILES_SCRIPT)} db/alembic.ini tenant p02 p03`,
    );
    expect(revisionFilesCommand(target, ['p02']).text).toMatch(/ '' alembic p02$/);
  });

  it('runs the migrate command with the lock timeout appended to PGOPTIONS', () => {
    expect(migrateCommand('/srv/app/releases/v1', 'alembic upgrade head', 5).text).toBe(
      `cd /srv/app/releases/v1 && PGOPTIONS="\${PGOPTIONS:+$PGOPTIONS }"'-c lock_timeout=5000ms' sh -c 'alembic upgrade head' 2>&1`,
    );
    expect(migrateCommand('/srv/app/releases/v1', 'alembic upgrade head', 2.5).text).toContain("'-c lock_timeout=2500ms'");
  });

  it('runs it without PGOPTIONS when the lock timeout is off', () => {
    expect(migrateCommand('/srv/app/releases/v1', ". ./.env && alembic upgrade head", 0).text).toBe(
      `cd /srv/app/releases/v1 && sh -c '. ./.env && alembic upgrade head' 2>&1`,
    );
  });
});
