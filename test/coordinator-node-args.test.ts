// The coordinator's V8 settings (launcher/service-process.ts): the ones `npm start` and the bench
// use are the ones `npm run coordinator` uses, and this Node accepts every one of them (a flag it
// did not know would stop the coordinator from starting at all).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COORDINATOR_NODE_ARGS } from '../src/launcher/service-process.ts';

describe('COORDINATOR_NODE_ARGS', () => {
  it('are the flags of `npm run coordinator`, GC on the main thread only among them', () => {
    const script = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> })
      .scripts.coordinator;
    const flags = script.split(/\s+/).filter((w) => w.startsWith('--') && w !== '--import');
    expect(flags).toEqual(COORDINATOR_NODE_ARGS);
    expect(COORDINATOR_NODE_ARGS).toContain('--single-threaded-gc');
  });

  it('start a Node process', () => {
    const run = spawnSync(process.execPath, [...COORDINATOR_NODE_ARGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
