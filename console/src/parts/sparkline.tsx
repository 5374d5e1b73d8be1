// A small line graph of the last samples (0–100 %), in SVG: no chart library for three lines.
const W = 160;
const H = 36;

export function Sparkline({ label, values }: { label: string; values: (number | null)[] }) {
  const step = W / Math.max(values.length - 1, 1);
  // A failed sample (null) breaks the line rather than drawing a fall to zero.
  const segments: string[] = [];
  let current = '';
  values.forEach((v, i) => {
    if (v === null) {
      if (current) segments.push(current);
      current = '';
      return;
    }
    current += `${current ? ' L' : 'M'}${(i * step).toFixed(1)},${(H - (Math.min(v, 100) / 100) * H).toFixed(1)}`;
  });
  if (current) segments.push(current);
  const last = values.at(-1);
  return (
    <div class="spark">
      <span class="label">{label}</span>
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={`${label} history`}>
        {segments.map((d, i) => (
          <path key={i} d={d} />
        ))}
      </svg>
      <span class="value">{last === null || last === undefined ? '–' : `${last.toFixed(0)}%`}</span>
    </div>
  );
}
