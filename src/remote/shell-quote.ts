/**
 * The one place where values become shell text. Every remote command is built with `sh`
 * (a tagged template that quotes each interpolated value) or `quote`; nothing else joins
 * user-controlled strings into a command line.
 */

/** A fragment of shell text that is already safe (built by `sh` or `raw`), passed through unquoted. */
export class ShellFragment {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Quotes one value for a POSIX shell: the result is always a single word, inert to expansion. */
export function quote(value: string | number): string {
  const text = String(value);
  if (text.includes('\0')) throw new Error('A NUL byte cannot be passed to a remote shell.');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Builds a command: literal parts are kept as written by the programmer, every `${value}` is
 * quoted, fragments from `sh`/`raw` are inserted as they are, arrays become quoted words
 * separated by spaces.
 */
export function sh(strings: TemplateStringsArray, ...values: ShellValue[]): ShellFragment {
  let text = strings[0] ?? '';
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] ?? '');
  });
  return new ShellFragment(text);
}

/** Marks constant program text (never user input) as a fragment. */
export function raw(text: string): ShellFragment {
  return new ShellFragment(text);
}

/** Joins fragments with a separator such as ' && ' or '\n'. */
export function joinFragments(parts: ShellFragment[], separator: string): ShellFragment {
  return new ShellFragment(parts.map((part) => part.text).join(separator));
}

export type ShellValue = string | number | ShellFragment | ReadonlyArray<string | number | ShellFragment>;

function render(value: ShellValue): string {
  if (value instanceof ShellFragment) return value.text;
  if (Array.isArray(value)) return value.map((item) => render(item as ShellValue)).join(' ');
  return quote(value as string | number);
}
