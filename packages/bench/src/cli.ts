#!/usr/bin/env node
/** The `webattn` executable. dawn.node keeps the process alive, so it always ends with process.exit. */
import { main } from './program.js';

main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`webattn: ${String(error)}\n`);
    process.exit(1);
  },
);
