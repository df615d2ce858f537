/**
 * A sandbox from the terminal, to poke at by hand or to test crash cleanup:
 *   npx tsx test/support/sandbox-cli.ts [--hosts N] [--serve] [--gunicorn 20.1|21.2|23.0|26.1] [--systemd [--sudo-user]]
 * Prints the sandbox as one JSON line, then keeps it until Ctrl-C / SIGTERM (torn down by the
 * exit hooks) or until this process dies any other way (torn down by the watchdog).
 */
import { startSandbox, startServingSandbox, type GunicornVersion, type Sandbox } from './sandbox.js';

const args = process.argv.slice(2);
const hostsFlag = args.indexOf('--hosts');
const hosts = hostsFlag >= 0 ? Number(args[hostsFlag + 1]) : 1;
const gunicornFlag = args.indexOf('--gunicorn');
const gunicorn = gunicornFlag >= 0 ? (args[gunicornFlag + 1] as GunicornVersion) : undefined;
const options = { hosts, gunicorn, systemd: args.includes('--systemd'), sudoUser: args.includes('--sudo-user') };
const sandbox: Sandbox = args.includes('--serve') ? await startServingSandbox(options) : await startSandbox(options);

console.log(
  JSON.stringify({
    id: sandbox.id,
    root: sandbox.root,
    appDir: sandbox.appDir,
    lbUrl: sandbox.lbUrl,
    gunicorn: sandbox.gunicornBin,
    hosts: sandbox.hosts,
    ssh: `ssh ${sandbox.sshArgs(1).join(' ')}`,
  }),
);
setInterval(() => {}, 1 << 30); // keep running until a signal
