/**
 * Entry point of the bundled action: everything lives in run(), so tests import it without
 * starting it. With arguments it is the terminal form: `node dist/index.js --hosts ... --mode plan`.
 */
import './cjs-globals.js';
import { CLI_USAGE, cliInputs } from './config/cli-arguments.js';
import { errorMessage } from './errors.js';
import { run } from './main.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(CLI_USAGE);
} else {
  try {
    Object.assign(process.env, cliInputs(argv));
    void run();
  } catch (error) {
    console.error(errorMessage(error));
    process.exitCode = 2;
  }
}
