/**
 * Entry point of the bundled action: everything lives in run(), so tests import it without
 * starting it. With arguments it is the terminal form: `node dist/index.js --hosts ... --mode plan`.
 * The runner runs it a second time as the post step (action.yml `runs.post`); the state the
 * main step saved tells the two apart.
 */
import './cjs-globals.js';
import { CLI_USAGE, cliInputs } from './config/cli-arguments.js';
import { errorMessage } from './errors.js';
import * as core from '@actions/core';
import { State } from './config/input-names.js';
import { run, saveState } from './main.js';
import { runPost } from './post-step.js';

const argv = process.argv.slice(2);
if (core.getState(State.IsPost) === 'true') {
  // The second run of this bundle in a job, as action.yml's `runs.post`.
  void runPost();
} else if (argv.includes('--help') || argv.includes('-h')) {
  console.log(CLI_USAGE);
} else {
  try {
    Object.assign(process.env, cliInputs(argv));
    saveState(State.IsPost, 'true');
    void run();
  } catch (error) {
    console.error(errorMessage(error));
    process.exitCode = 2;
  }
}
