import { sh, type ShellFragment } from '../remote/shell-quote.js';

// urllib does not take credentials from the URL: they go in a Basic Authorization header.
// The URL comes on stdin (it may hold credentials, and argv is public in ps); argv: timeout, then
// how many readings and the pause between them (one Python start for a gate's whole streak); one
// JSON line per reading, stopping after the first that is not 2xx.
const PROBE = [
  'import base64, json, sys, time, urllib.parse, urllib.request, urllib.error',
  'opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))',
  'u = urllib.parse.urlsplit(sys.stdin.readline().strip())',
  'req = urllib.request.Request(urllib.parse.urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2])))',
  'if u.username is not None:',
  '    pair = urllib.parse.unquote(u.username) + ":" + urllib.parse.unquote(u.password or "")',
  '    req.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())',
  'count, pause = int(sys.argv[2]), float(sys.argv[3])',
  'for i in range(count):',
  '    if i:',
  '        time.sleep(pause)',
  '    try:',
  '        r = opener.open(req, timeout=float(sys.argv[1]))',
  '        status, headers, body = r.status, r.headers, r.read(2048)',
  '        r.close()',
  '    except urllib.error.HTTPError as e:',
  '        status, headers, body = e.code, e.headers, e.read(2048)',
  '    except Exception as e:',
  '        status, headers, body = 0, {}, repr(e).encode()',
  '    print(json.dumps({"status": status, "version": headers.get("X-App-Version"), "body": body.decode("utf-8", "replace")}), flush=True)',
  '    if not 200 <= status < 300:',
  '        break',
].join('\n');

/**
 * Requests the readiness URL from the host itself and prints {status, version, body} as JSON:
 * once, or `count` times `pauseSeconds` apart (stopping after an answer that is not 2xx). The
 * URL goes to the command's stdin, never its command line: health-url may carry credentials,
 * and every user of the host sees command lines in ps.
 */
export function healthProbe(python: string, url: string, timeoutSeconds: number, count = 1, pauseSeconds = 0): { command: ShellFragment; stdin: string } {
  return { command: sh`${python} -c ${PROBE} ${timeoutSeconds} ${count} ${pauseSeconds}`, stdin: `${url}\n` };
}
