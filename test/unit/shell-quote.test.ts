import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { joinFragments, quote, raw, sh } from '../../src/remote/shell-quote.js';

/** Runs text through a real POSIX shell and returns what `printf '%s\n'` saw as separate words. */
function wordsOf(command: string): string[] {
  return execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${command}`], { encoding: 'utf8' }).split('\0').slice(0, -1);
}

describe('quote', () => {
  it('leaves plain words alone', () => {
    expect(quote('/srv/app/releases/v1.2.3')).toBe('/srv/app/releases/v1.2.3');
    expect(quote(42)).toBe('42');
  });

  const hostile = ["a'b", '$(touch /tmp/pwned)', '`id`', 'a b', 'x;rm -rf /', '\n', '"', '\\', '*', '', "'", "''", '$HOME', '-n', 'ä ö'];
  it.each(hostile)('makes %j one inert word', (value) => {
    expect(wordsOf(quote(value))).toEqual([value]);
  });

  it('refuses NUL bytes', () => {
    expect(() => quote('a\0b')).toThrow(/NUL/);
  });
});

describe('sh', () => {
  it('quotes each interpolated value and keeps literal text', () => {
    const dir = "/tmp/it's here";
    expect(sh`cd ${dir} && ls`.text).toBe(`cd '/tmp/it'\\''s here' && ls`);
  });

  it('splices fragments unquoted and arrays as separate words', () => {
    const inner = sh`echo ${'a b'}`;
    expect(sh`${inner} | cat`.text).toBe(`echo 'a b' | cat`);
    expect(sh`rm -- ${['x y', 'z']}`.text).toBe(`rm -- 'x y' z`);
    expect(joinFragments([raw('a'), raw('b')], ' && ').text).toBe('a && b');
  });

  it('runs nothing that a value carries', () => {
    const value = '$(echo PWNED)';
    expect(execFileSync('/bin/sh', ['-c', sh`printf %s ${value}`.text], { encoding: 'utf8' })).toBe(value);
  });
});
