// Entry point of the `tessera` command (bin/tessera.js loads it through tsx): runs the command
// line and exits with its status.
import { runCli } from './cli-program.ts';

// `tessera ls | head` closes the pipe early: that ends the output, it is not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const status = await runCli(process.argv);
process.exitCode = status;
// Whatever still holds the event loop (a socket in its last close handshake) must not keep a
// finished command alive; unref'd, this timer never delays a clean exit.
setTimeout(() => process.exit(status), 1000).unref();
