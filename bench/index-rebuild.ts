// `npm run bench:rebuild [-- --images N]`: how long a coordinator on an empty index takes to
// rebuild it from the datanodes' records. N one-fragment images (1 KB, replication 2) are laid
// on 3 datanodes' disks as the datanodes themselves keep them (fragment files and the record
// journal), then real datanodes and a coordinator start on them; the figure is the time from
// the coordinator's start until its index lists every image.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { createDatanode } from '../datanode/server.ts';
import type { ImageManifest } from '../src/shared/datanode-api.ts';
import { makeConfig } from '../src/config.ts';
import { startCoordinator } from '../src/start-coordinator.ts';

const opts = new Command('bench:rebuild')
  .option('--images <n>', 'images to rebuild', (v) => Number(v), 10_000)
  .parse()
  .opts<{ images: number }>();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-rebuild-bench-'));
const secret = randomBytes(16).toString('hex');
const quiet = pino({ level: 'silent' });

try {
  const nodeDirs = [0, 1, 2].map((i) => path.join(dir, `datanode-${i}`));
  const journals = nodeDirs.map(() => [] as string[]);
  for (const d of nodeDirs) fs.mkdirSync(path.join(d, 'fragments'), { recursive: true });
  const t0 = Date.now();
  for (let i = 0; i < opts.images; i++) {
    const bytes = randomBytes(1024);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const id = randomBytes(16).toString('base64url');
    const manifest: ImageManifest = {
      kind: 'manifest',
      image: randomBytes(16).toString('base64url'),
      name: `bench/${String(i).padStart(6, '0')}.bin`,
      size: 1024,
      contentType: 'application/octet-stream',
      sha256,
      createdAt: Date.now(),
      fragmentSize: 2 * 1024 * 1024,
      fragments: [{ index: 0, size: 1024, sha256, id }],
    };
    for (const n of [i % 3, (i + 1) % 3]) {
      fs.writeFileSync(path.join(nodeDirs[n], 'fragments', id), bytes);
      journals[n].push(JSON.stringify(manifest));
    }
  }
  nodeDirs.forEach((d, n) => {
    fs.mkdirSync(path.join(d, 'records'), { recursive: true });
    fs.writeFileSync(path.join(d, 'records', 'journal.jsonl'), journals[n].join('\n') + '\n');
  });
  process.stderr.write(`bench: laid out ${opts.images} images on 3 datanodes in ${Date.now() - t0} ms\n`);

  const datanodes = await Promise.all(nodeDirs.map((d) => createDatanode({ dataDir: d, secret, logger: quiet })));
  const urls = await Promise.all(datanodes.map(async (d) => (await d.listen(0)).url));
  const log = pino({ level: 'info' }, pino.destination(2));
  const started = Date.now();
  const coordinator = await startCoordinator(
    makeConfig({ dataDir: path.join(dir, 'coordinator'), port: 0, secret, datanodes: urls, healthIntervalMs: 500 }),
    log,
  );
  while (coordinator.app.rebuilding()) await new Promise((r) => setTimeout(r, 20));
  const ms = Date.now() - started;
  const listed = await coordinator.app.images.count();
  await coordinator.stop();
  await Promise.all(datanodes.map((d) => d.close()));
  process.stdout.write(
    `index rebuild: ${listed} of ${opts.images} images (2 replicas each, 3 datanodes) in ${(ms / 1000).toFixed(2)} s (${Math.round(listed / (ms / 1000))} images/s), from coordinator start to a complete index\n`,
  );
  if (listed !== opts.images) process.exitCode = 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
