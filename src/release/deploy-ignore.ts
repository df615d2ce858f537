import ignore from 'ignore';

/** Name of the file, at the root of `source`, that lists what must not ship (gitignore syntax). */
export const DEPLOY_IGNORE_FILE = '.deployignore';

/**
 * Always applied before the user's `.deployignore` (a `!pattern` there ships one again).
 * VCS metadata (actions/checkout leaves its token in .git/config); the credentials file
 * google-github-actions/auth writes into the workspace; `.env` files, which belong in
 * shared/ on the host (shared-paths), not in a release archive.
 */
export const DEFAULT_DEPLOY_IGNORE: readonly string[] = ['.git/', '.hg/', '.svn/', 'gha-creds-*.json', '.env', '.env.*', '!.env.example'];

/** Decides, for a path relative to `source` (`/`-separated), whether it stays out of the release. */
export type DeployIgnore = (relativePath: string, isDirectory: boolean) => boolean;

/** The defaults followed by the lines of a `.deployignore` (same rules as .gitignore: last match wins). */
export function deployIgnore(userText = ''): DeployIgnore {
  const matcher = ignore().add([...DEFAULT_DEPLOY_IGNORE]).add(userText);
  return (relativePath, isDirectory) => matcher.ignores(isDirectory ? `${relativePath}/` : relativePath);
}
