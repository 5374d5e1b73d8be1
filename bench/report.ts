// The bench's results: one row per figure (Tessera, baseline, ratio, target, pass/fail), printed
// as a table for people or as JSON for machines.

export interface Figure {
  id: string;
  label: string;
  unit: string;
  /** Median (or peak, for memory) of Tessera's runs. */
  tessera: number;
  /** The same figure for the baseline (the bare proxy, or raw SQLite for the listing); null when there is none. */
  baseline: number | null;
  /** How the target reads: 'ratio' compares tessera/baseline, 'min'/'max' compare tessera to `threshold`. */
  target?: { kind: 'ratio-min' | 'min' | 'max'; threshold: number; text: string };
  samples: { tessera: number[]; baseline: number[] };
  /** Median CPU ms per unit of the server (coordinator or bare proxy) and of the 3 datanodes together: steadier than rates on a shared machine. */
  cpu?: {
    unit: string;
    /** What the baseline is, in the CPU line ('bare' unless told). */
    baselineName?: string;
    tessera: { server: number; datanodes: number };
    baseline: { server: number; datanodes: number };
  };
  note?: string;
}

export const median = (xs: number[]) => percentile(xs, 50);

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const ratioOf = (f: Figure) => (f.baseline ? f.tessera / f.baseline : null);

export function passes(f: Figure): boolean | null {
  if (!f.target) return null;
  const { kind, threshold } = f.target;
  if (kind === 'ratio-min') {
    const r = ratioOf(f);
    return r === null ? null : r >= threshold;
  }
  return kind === 'min' ? f.tessera >= threshold : f.tessera <= threshold;
}

const fmt = (x: number | null) => (x === null || Number.isNaN(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export function table(figures: Figure[]): string {
  const rows = [
    ['figure', 'Tessera', 'baseline', 'ratio', 'target', 'result'],
    ...figures.map((f) => {
      const r = ratioOf(f);
      const p = passes(f);
      return [
        `${f.label} (${f.unit})`,
        fmt(f.tessera),
        fmt(f.baseline),
        r === null ? '—' : `${r.toFixed(2)}x`,
        f.target?.text ?? '—',
        p === null ? '' : p ? 'PASS' : 'FAIL',
      ];
    }),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  const notes = figures.filter((f) => f.note).map((f) => `  ${f.label}: ${f.note}`);
  const cpu = figures
    .filter((f) => f.cpu)
    .map((f) => {
      const c = f.cpu!;
      return `  ${f.label}: server ${fmt(c.tessera.server)} vs ${fmt(c.baseline.server)} (${c.baselineName ?? 'bare'}), datanodes ${fmt(c.tessera.datanodes)} vs ${fmt(c.baseline.datanodes)} CPU ms per ${c.unit}`;
    });
  return [
    ...out,
    ...(notes.length ? ['', 'notes:', ...notes] : []),
    ...(cpu.length ? ['', 'CPU (medians; Tessera vs baseline):', ...cpu] : []),
  ].join('\n');
}

export function json(figures: Figure[], meta: Record<string, unknown>): string {
  return JSON.stringify(
    {
      ...meta,
      figures: figures.map((f) => ({ ...f, ratio: ratioOf(f), pass: passes(f) })),
      allPass: figures.every((f) => passes(f) !== false),
    },
    null,
    2,
  );
}
