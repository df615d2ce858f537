/**
 * ssh2's bundled WebAssembly glue (poly1305) reads `__dirname`, which an ES module bundle
 * does not define. Imported first by index.ts, before anything loads ssh2.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const scope = globalThis as { __dirname?: string; __filename?: string };
scope.__filename ??= fileURLToPath(import.meta.url);
scope.__dirname ??= dirname(scope.__filename);
