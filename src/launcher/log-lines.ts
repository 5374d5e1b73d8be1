// Turns a child's pino JSON log line into one line a person reads in the `npm start` terminal.
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

export function humanLogLine(name: string, line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line);
  } catch {
    return `[${name}] ${line}`;
  }
  if (typeof entry !== 'object' || entry === null || !('msg' in entry)) return `[${name}] ${line}`;
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 19) : '';
  const extra = Object.entries(entry)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${LEVELS[entry.level as number] ?? ''} [${name}] ${entry.msg}${extra ? `  ${extra}` : ''}`;
}
