// Text the CLI prints for people: byte sizes, percentages and plain aligned tables (a table
// dependency for two tables is not worth it).

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '-';
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export const formatPercent = (n: number | null | undefined) => (n == null ? '-' : `${n.toFixed(1)}%`);

/** Columns padded to their widest cell; `right` lists the columns aligned right (numbers). */
export function formatTable(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]) : i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The last path segment of an image name, when it makes a safe local file name. */
export function localNameOf(imageName: string): string | undefined {
  const last = imageName.split(/[/\\]/).pop() ?? '';
  return last === '' || last === '.' || last === '..' ? undefined : last;
}
