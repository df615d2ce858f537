/**
 * Parsers for HAProxy 2.6's runtime API answers: `show stat` (CSV, header line `# pxname,...`)
 * and `show servers state <backend>` (space separated, header `# be_id be_name ...`). Pure
 * functions over text, so every field we rely on is pinned by a unit test.
 */

/** One server's line of `show stat`, with the counters the balancer reads. */
export interface ServerStat {
  backend: string;
  server: string;
  /** Requests queued for this server (column qcur). */
  qcur: number;
  /** Sessions open on this server (column scur). */
  scur: number;
  /** UP, DOWN, DRAIN, MAINT, `UP 1/2` (going down), `DOWN 1/2` (going up), `no check`. */
  status: string;
  hrsp2xx: number;
  hrsp5xx: number;
  /** Responses of every class (1xx..5xx and other): the requests the server answered. */
  responses: number;
  /** Response errors (the server closed or answered garbage) and connection errors. */
  eresp: number;
  econ: number;
  /**
   * Attempts on this server that failed and that HAProxy retried (column wretr: `retries` with
   * `retry-on`, or a redispatch): counted in eresp/econ, but the client got its answer elsewhere.
   */
  wretr: number;
  /** Average response time in ms over the last 1024 requests (HAProxy's moving window). */
  rtime: number;
  /** `addr` column (ip:port), empty in older versions. */
  addr: string;
}

/** Every server row of `show stat` (FRONTEND/BACKEND aggregate rows left out). */
export function parseShowStat(csv: string): ServerStat[] {
  const lines = csv.split('\n').filter((line) => line.trim() !== '');
  const header = lines.shift();
  if (!header?.startsWith('# pxname,')) throw new Error(`not a 'show stat' answer: ${(header ?? '(empty)').slice(0, 120)}`);
  const columns = header.slice(2).split(',');
  const at = (name: string): number => columns.indexOf(name);
  const number = (fields: string[], name: string): number => Number(fields[at(name)] || 0) || 0;
  const rows: ServerStat[] = [];
  for (const line of lines) {
    const fields = line.split(',');
    const server = fields[at('svname')] ?? '';
    if (server === 'FRONTEND' || server === 'BACKEND') continue;
    const responses = ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'].reduce((sum, name) => sum + number(fields, name), 0);
    rows.push({
      backend: fields[at('pxname')] ?? '',
      server,
      qcur: number(fields, 'qcur'),
      scur: number(fields, 'scur'),
      status: fields[at('status')] ?? '',
      hrsp2xx: number(fields, 'hrsp_2xx'),
      hrsp5xx: number(fields, 'hrsp_5xx'),
      responses,
      eresp: number(fields, 'eresp'),
      econ: number(fields, 'econ'),
      wretr: number(fields, 'wretr'),
      rtime: number(fields, 'rtime'),
      addr: at('addr') >= 0 ? (fields[at('addr')] ?? '') : '',
    });
  }
  return rows;
}

/** One server of `show servers state <backend>`. */
export interface ServerState {
  backend: string;
  server: string;
  /** srv_addr: the address HAProxy connects to. */
  address: string;
  port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** srv_admin_state bits: 0x01/0x02/0x04 maintenance, 0x08/0x10/0x20 drain. */
  adminState: number;
}

/** Parses `show servers state` (format version 1: a version line, then `# be_id ...` header). */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  const headerIndex = lines.findIndex((line) => line.startsWith('# be_id'));
  if (headerIndex < 0) throw new Error(`not a 'show servers state' answer: ${(lines[0] ?? '(empty)').slice(0, 120)}`);
  const columns = (lines[headerIndex] ?? '').slice(2).split(/\s+/);
  const at = (name: string): number => columns.indexOf(name);
  return lines.slice(headerIndex + 1).filter((line) => !line.startsWith('#')).map((line) => {
    const fields = line.split(/\s+/);
    return {
      backend: fields[at('be_name')] ?? '',
      server: fields[at('srv_name')] ?? '',
      address: fields[at('srv_addr')] ?? '',
      port: Number(fields[at('srv_port')] ?? 0) || 0,
      opState: Number(fields[at('srv_op_state')] ?? 0) || 0,
      adminState: Number(fields[at('srv_admin_state')] ?? 0) || 0,
    };
  });
}

/** Whether HAProxy sends this server new traffic: checked UP (or unchecked) and not drained or in maintenance. */
export function takesTraffic(stat: ServerStat): boolean {
  return stat.status === 'UP' || stat.status.startsWith('UP ') || stat.status === 'no check';
}
