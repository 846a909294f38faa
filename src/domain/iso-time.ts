/** 0000-01-01T00:00:00.000Z and 10000-01-01T00:00:00.000Z: the years written with four digits. */
const FIRST_MS = -62_167_219_200_000;
const END_MS = 253_402_300_800_000;

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);
const pad4 = (n: number) => (n < 1000 ? `0${pad3(n)}` : `${n}`);

/**
 * `new Date(ms).toISOString()`: the same string, built from the UTC fields for the years
 * 0000–9999 (about 0.4 against 1.1 µs on the bench machine; it is written three times per
 * measurement). Other times, and a time that is not one, go to `toISOString` itself.
 */
export function isoTime(ms: number): string {
  const date = new Date(ms);
  if (!(ms >= FIRST_MS && ms < END_MS)) return date.toISOString();
  return `${pad4(date.getUTCFullYear())}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}T${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}.${pad3(date.getUTCMilliseconds())}Z`;
}
