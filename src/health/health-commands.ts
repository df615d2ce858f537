import { sh, type ShellFragment } from '../remote/shell-quote.js';

const PROBE = [
  'import json, sys, urllib.request, urllib.error',
  'opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))',
  'try:',
  '    r = opener.open(sys.argv[1], timeout=float(sys.argv[2]))',
  '    status, headers, body = r.status, r.headers, r.read(2048)',
  'except urllib.error.HTTPError as e:',
  '    status, headers, body = e.code, e.headers, e.read(2048)',
  'except Exception as e:',
  '    status, headers, body = 0, {}, repr(e).encode()',
  'print(json.dumps({"status": status, "version": headers.get("X-App-Version"), "body": body.decode("utf-8", "replace")}))',
].join('\n');

/** Requests the readiness URL from the host itself and prints {status, version, body} as JSON. */
export function healthProbeCommand(python: string, url: string, timeoutSeconds: number): ShellFragment {
  return sh`${python} -c ${PROBE} ${url} ${timeoutSeconds}`;
}
