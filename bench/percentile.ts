/** The p-th percentile (0-100) of xs, nearest rank; NaN for no samples. Shared by the benches. */
export const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
