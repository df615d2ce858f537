/** Entry point of the bundled action: everything lives in run(), so tests import it without starting it. */
import './cjs-globals.js';
import { run } from './main.js';

void run();
