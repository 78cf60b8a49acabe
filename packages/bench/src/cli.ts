#!/usr/bin/env node
/** The `webattn` executable. dawn.node keeps the process alive, so it always ends with process.exit. */
import { main } from './program.js';

/** Exits once stdout and stderr have drained: writes to a pipe are asynchronous and exit() drops them. */
function exitWhenFlushed(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}).then(exitWhenFlushed, (error: unknown) => {
  process.stderr.write(`webattn: ${String(error)}\n`);
  exitWhenFlushed(1);
});
