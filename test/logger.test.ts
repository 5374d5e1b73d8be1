// The coordinator's log: info lines gathered and written together (at most LOG_BATCH_MS late),
// a warning or an error written at once with what waited before it, everything written before
// the process says it is ready (flushLog) and when it exits.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { createLogger, flushLog, LOG_BATCH_MS } from '../src/logger.ts';
import { REPO_ROOT } from '../src/launcher/child-process.ts';
import { until } from './support/poll.ts';

let dir: string;
let file: string;
let fd: number;
const written = () => readFileSync(file, 'utf8');
const messages = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).msg as string);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-logger-'));
  file = join(dir, 'log');
  fd = fs.openSync(file, 'w');
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  fs.closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

it('info lines wait, then leave in one write LOG_BATCH_MS after the first', async () => {
  const write = vi.spyOn(fs, 'write');
  const log = createLogger('test', 'info', fd);
  log.info({ image: 'a.png' }, 'image deleted');
  log.info({ image: 'b.png' }, 'image deleted');
  expect(write).not.toHaveBeenCalled();
  vi.advanceTimersByTime(LOG_BATCH_MS);
  expect(write).toHaveBeenCalledTimes(1);
  vi.useRealTimers(); // until() polls with them
  await until(() => messages(written()).length === 2, 'both lines in the file');
  expect(
    written()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).image),
  ).toEqual(['a.png', 'b.png']);
});

it('a warning leaves at once, after the info lines that waited', async () => {
  const write = vi.spyOn(fs, 'write');
  const log = createLogger('test', 'info', fd);
  log.info('first');
  log.warn('then a warning');
  expect(write).toHaveBeenCalledTimes(1);
  vi.useRealTimers();
  await until(() => messages(written()).length === 2, 'both lines in the file');
  expect(messages(written())).toEqual(['first', 'then a warning']);
});

it('flushLog resolves once every line so far is written', async () => {
  const log = createLogger('test', 'info', fd);
  log.info('starting');
  log.info({ file: '/data/admin.token' }, 'admin token file');
  await flushLog(log);
  expect(messages(written())).toEqual(['starting', 'admin token file']);
});

it('lines still waiting are written when the process exits', async () => {
  vi.useRealTimers();
  const script = `import { createLogger } from './src/logger.ts'; createLogger('t').info('last words'); process.exit(0);`;
  const { stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
  });
  expect(messages(stderr)).toEqual(['last words']);
});

it('a line logged while a write is in flight is written without waiting for a later line', async () => {
  // The first warning's write is in flight when the second is handed on: it must follow by itself.
  vi.useRealTimers();
  const log = createLogger('test', 'info', fd);
  log.warn('a');
  log.warn('b');
  await until(() => messages(written()).length === 2, 'both warnings in the file');
  expect(messages(written())).toEqual(['a', 'b']);
});

it('flushLog after a warning and an info line resolves with both written', async () => {
  vi.useRealTimers();
  const log = createLogger('test', 'info', fd);
  log.warn('a warning');
  log.info({ file: '/data/admin.token' }, 'admin token file');
  await flushLog(log);
  expect(messages(written())).toEqual(['a warning', 'admin token file']);
});
