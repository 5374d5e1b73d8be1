// A small line graph of the last samples (0–100 %), in SVG: no chart library for three lines.
const W = 160;
const H = 36;

/** `values`: the latest last, drawn from the right edge, `capacity` of them filling the width. */
export function Sparkline({ label, values, capacity }: { label: string; values: (number | null)[]; capacity: number }) {
  const step = W / Math.max(capacity - 1, 1);
  const x0 = W - (values.length - 1) * step;
  // A failed sample (null) breaks the line rather than drawing a fall to zero.
  const segments: string[] = [];
  let current = '';
  values.forEach((v, i) => {
    if (v === null) {
      if (current) segments.push(current);
      current = '';
      return;
    }
    current += `${current ? ' L' : 'M'}${(x0 + i * step).toFixed(1)},${(H - 2 - (Math.min(v, 100) / 100) * (H - 4)).toFixed(1)}`;
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
