import { describe, expect, it } from 'vitest';

import { isLintEnabled, parseAlembicInvocation } from '../../../src/migrate/alembic-invocation.js';
import { MigrationError } from '../../../src/migrate/migration-errors.js';

describe('parseAlembicInvocation', () => {
  it('finds alembic by name, by path, or as a python module', () => {
    for (const command of [
      'alembic upgrade head',
      '.venv/bin/alembic upgrade head',
      '/srv/app/venv/bin/python -m alembic upgrade head',
      'cd backend && DATABASE_URL=sqlite:///x.db alembic upgrade head',
    ]) {
      expect(parseAlembicInvocation(command), command).toEqual({ globalArgs: [], configFile: null, section: null });
    }
  });

  it('returns null for commands that do not run alembic', () => {
    for (const command of ['flask db upgrade', './manage.py migrate', 'make migrate', 'echo -m alembic']) {
      expect(parseAlembicInvocation(command), command).toBeNull();
    }
  });

  it('collects -c/--config, -n/--name and -x, skipping flags, up to the subcommand', () => {
    expect(
      parseAlembicInvocation(`alembic --raiseerr -c "db/alembic prod.ini" --name=tenant -x region='eu west' upgrade head -x ignored`),
    ).toEqual({
      globalArgs: ['-c', 'db/alembic prod.ini', '--name', 'tenant', '-x', 'region=eu west'],
      configFile: 'db/alembic prod.ini',
      section: 'tenant',
    });
  });

  it('stops at a control operator', () => {
    expect(parseAlembicInvocation('alembic -c a.ini && echo -c b.ini')?.configFile).toBe('a.ini');
  });

  it('refuses an option whose value the shell computes', () => {
    expect(() => parseAlembicInvocation('alembic -c "$ALEMBIC_INI" upgrade head')).toThrow(MigrationError);
    expect(() => parseAlembicInvocation("alembic -c '$literal.ini' upgrade head")).not.toThrow();
  });
});

describe('isLintEnabled', () => {
  it('auto lints exactly when the command runs alembic; on and off are what they say', () => {
    expect(isLintEnabled('on', 'alembic upgrade head')).toBe(true);
    expect(isLintEnabled('warn', 'alembic upgrade head')).toBe(true);
    expect(isLintEnabled('on', 'python manage.py migrate')).toBe(false);
    expect(isLintEnabled('on', 'flask db upgrade')).toBe(false);
    expect(isLintEnabled('off', 'alembic upgrade head')).toBe(false);
  });
});
