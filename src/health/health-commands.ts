import { sh, type ShellFragment } from '../remote/shell-quote.js';

/** Where the probe sends its request: health-url, and the parts of it the probe cannot take from the URL. */
export interface ProbeTarget {
  /** health-url as parsed: http://, https:// or http+unix://<socket, percent-encoded>/<path>. */
  url: string;
  /** The unix socket to connect to (health-url http+unix://), decoded; undefined for TCP. */
  socket?: string;
  /** The Host header to send (health-host); undefined: from the URL (`localhost` over a unix socket). */
  host?: string;
}

// http.client, not urllib: urllib follows redirects (a redirect to https would pass on what the
// redirect target answers, or fail as "no answer"), reads proxy variables and speaks no unix
// socket. Credentials in the URL go in a Basic Authorization header. Over TLS, the name checked
// (and sent as SNI) is health-host's when given, else the URL's.
// The URL comes on stdin (it may hold credentials, and argv is public in ps). argv: timeout, how
// many readings and the pause between them (one Python start for a gate's whole streak), unix
// socket ('' for TCP), Host header ('' for the default). One JSON line per reading, stopping
// after the first that is not 2xx; a redirect's Location is part of its line.
const PROBE = [
  'import base64, http.client, json, socket, ssl, sys, time, urllib.parse',
  'u = urllib.parse.urlsplit(sys.stdin.readline().strip())',
  'timeout, count, pause, unix, host = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]',
  'headers = {"Host": host} if host else {}',
  'if u.username is not None:',
  '    pair = urllib.parse.unquote(u.username) + ":" + urllib.parse.unquote(u.password or "")',
  '    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()',
  'target = (u.path or "/") + ("?" + u.query if u.query else "")',
  'class Unix(http.client.HTTPConnection):',
  '    def connect(self):',
  '        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
  '        self.sock.settimeout(self.timeout)',
  '        self.sock.connect(unix)',
  'class Tls(http.client.HTTPConnection):',
  '    def connect(self):',
  '        super().connect()',
  '        name = urllib.parse.urlsplit("//" + host).hostname if host else u.hostname',
  '        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=name)',
  'def connection():',
  '    if unix:',
  '        return Unix("localhost", timeout=timeout)',
  '    port = u.port or (443 if u.scheme == "https" else 80)',
  '    return (Tls if u.scheme == "https" else http.client.HTTPConnection)(u.hostname, port, timeout=timeout)',
  'for i in range(count):',
  '    if i:',
  '        time.sleep(pause)',
  '    location = None',
  '    try:',
  '        c = connection()',
  '        c.request("GET", target, headers=headers)',
  '        r = c.getresponse()',
  '        status, version, location, body = r.status, r.getheader("X-App-Version"), r.getheader("Location"), r.read(2048)',
  '        c.close()',
  '    except Exception as e:',
  '        status, version, body = 0, None, repr(e).encode()',
  '    print(json.dumps({"status": status, "version": version, "location": location, "body": body.decode("utf-8", "replace")}), flush=True)',
  '    if not 200 <= status < 300:',
  '        break',
].join('\n');

/**
 * Requests the readiness URL from the host itself (over TCP or the unix socket of an
 * http+unix URL) and prints {status, version, location, body} as JSON: once, or `count` times
 * `pauseSeconds` apart (stopping after an answer that is not 2xx). Redirects are not followed.
 * The URL goes to the command's stdin, never its command line: health-url may carry
 * credentials, and every user of the host sees command lines in ps.
 */
export function healthProbe(python: string, target: ProbeTarget, timeoutSeconds: number, count = 1, pauseSeconds = 0): { command: ShellFragment; stdin: string } {
  return { command: sh`${python} -c ${PROBE} ${timeoutSeconds} ${count} ${pauseSeconds} ${target.socket ?? ''} ${target.host ?? ''}`, stdin: `${target.url}\n` };
}
