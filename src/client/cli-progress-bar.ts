// The CLI's progress display: a cli-progress bar on stderr (bytes, rate, ETA) when stderr is a
// terminal, nothing otherwise, so logs and pipes stay clean.
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';
import { formatBytes } from './cli-format.ts';

// Loaded only when a bar is shown (a terminal): a command in a pipe or a script starts faster.
const require = createRequire(import.meta.url);

export interface ProgressView {
  update(label: string, done: number, total: number): void;
  stop(): void;
}

export function createProgressView(enabled = Boolean(process.stderr.isTTY)): ProgressView {
  if (!enabled) return { update() {}, stop() {} };
  const cliProgress = require('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar(
    {
      format: '{label} {bar} {percentage}% | {doneText} / {totalText} | {rate}/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      barsize: 28,
      fps: 8,
      etaBuffer: 40,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let label = '';
  // The rate counts this run's bytes only: a resumed upload starts part-way.
  let since = 0;
  let base = 0;
  return {
    update(nextLabel, done, total) {
      const now = Date.now();
      if (!started || nextLabel !== label) {
        if (started) bar.stop();
        bar.start(total, done, { label: nextLabel, doneText: formatBytes(done), totalText: formatBytes(total), rate: formatBytes(0) });
        started = true;
        label = nextLabel;
        since = now;
        base = done;
        return;
      }
      const seconds = Math.max((now - since) / 1000, 0.001);
      bar.setTotal(total);
      bar.update(done, {
        label,
        doneText: formatBytes(done),
        totalText: formatBytes(total),
        rate: formatBytes(Math.round((done - base) / seconds)),
      });
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
