// Preloaded (NODE_OPTIONS=--import) by `npm run bench -- --profile DIR` into every cluster
// process: Node 20 refuses --cpu-prof in NODE_OPTIONS, so the inspector takes the profile and
// writes DIR/<script>-<pid>.cpuprofile when the process exits.
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const dir = process.env.TESSERA_BENCH_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.once('exit', () => {
    // Main-thread sessions answer synchronously, so this runs before the process is gone.
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      const script = path.relative(process.cwd(), process.argv[1] ?? 'node').replace(/\W+/g, '_');
      fs.writeFileSync(path.join(dir, `${script}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
