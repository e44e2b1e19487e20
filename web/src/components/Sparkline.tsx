interface Props {
  values: number[];
  max?: number;
  width?: number;
  height?: number;
  label: string;
}

/** The points of a line through values, scaled into width x height. */
export function sparkPoints(values: number[], max: number, width: number, height: number): string {
  if (values.length === 0) return "";
  const top = max > 0 ? max : Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const y = height - (Math.min(v, top) / top) * height;
      return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

/** A small line chart (SVG, no library). */
export function Sparkline({ values, max = 0, width = 240, height = 48, label }: Props) {
  return (
    <svg className="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={label}>
      <polyline fill="none" stroke="currentColor" strokeWidth="1.5" points={sparkPoints(values, max, width, height)} />
    </svg>
  );
}
