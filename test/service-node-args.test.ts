// The V8 settings of the coordinator and the datanodes (launcher/service-process.ts): the ones
// `npm start` and the bench use are the ones `npm run coordinator` and `npm run datanode` use, and
// this Node accepts every one of them (a flag it did not know would stop the process from starting).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COORDINATOR_NODE_ARGS, DATANODE_NODE_ARGS } from '../src/launcher/service-process.ts';

const scripts = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> })
  .scripts;
const flagsOf = (script: string) => script.split(/\s+/).filter((w) => w.startsWith('--') && w !== '--import');

// Without it a coordinator that idles a few seconds throws its optimized code away (service-process.ts):
// npm run bench figures show the cost, this guards the setting itself.
it("keeps the coordinator's memory reducer off", () => {
  expect(COORDINATOR_NODE_ARGS).toContain('--no-memory-reducer');
});

describe.each([
  ['coordinator', COORDINATOR_NODE_ARGS],
  ['datanode', DATANODE_NODE_ARGS],
])('the %s node args', (script, args) => {
  it(`are the flags of \`npm run ${script}\`, GC on the main thread only among them`, () => {
    expect(flagsOf(scripts[script])).toEqual(args);
    expect(args).toContain('--single-threaded-gc');
  });

  it('start a Node process', () => {
    const run = spawnSync(process.execPath, [...args, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
