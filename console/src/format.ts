// How figures read on screen.
const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export const percent = (n: number | null | undefined) => (n === null || n === undefined ? '–' : `${n.toFixed(0)}%`);

export const time = (iso: string) => new Date(iso).toLocaleTimeString();

export const dateTime = (iso: string) => new Date(iso).toLocaleString();
