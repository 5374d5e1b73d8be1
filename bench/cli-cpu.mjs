// Preloaded (--import) into the bench's `tessera` CLI processes: writes the process's own CPU
// time (user + system, µs) to $TESSERA_BENCH_CPU_FILE when it exits, steadier than its wall time
// on a shared machine.
import fs from 'node:fs';

const file = process.env.TESSERA_BENCH_CPU_FILE;
if (file) process.once('exit', () => fs.writeFileSync(file, JSON.stringify(process.cpuUsage())));
