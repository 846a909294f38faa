export const AQI_CATEGORIES = [
  'Good',
  'Moderate',
  'Unhealthy for Sensitive Groups',
  'Unhealthy',
  'Very Unhealthy',
  'Hazardous',
] as const;
export type AqiCategory = (typeof AQI_CATEGORIES)[number];

interface Band {
  cLo: number;
  cHi: number;
  iLo: number;
  iHi: number;
}

// US EPA breakpoints, PM2.5 from the 2024 revision (SPEC §6).
const PM25: Band[] = [
  { cLo: 0.0, cHi: 9.0, iLo: 0, iHi: 50 },
  { cLo: 9.1, cHi: 35.4, iLo: 51, iHi: 100 },
  { cLo: 35.5, cHi: 55.4, iLo: 101, iHi: 150 },
  { cLo: 55.5, cHi: 125.4, iLo: 151, iHi: 200 },
  { cLo: 125.5, cHi: 225.4, iLo: 201, iHi: 300 },
  { cLo: 225.5, cHi: 325.4, iLo: 301, iHi: 500 },
];
const PM10: Band[] = [
  { cLo: 0, cHi: 54, iLo: 0, iHi: 50 },
  { cLo: 55, cHi: 154, iLo: 51, iHi: 100 },
  { cLo: 155, cHi: 254, iLo: 101, iHi: 150 },
  { cLo: 255, cHi: 354, iLo: 151, iHi: 200 },
  { cLo: 355, cHi: 424, iLo: 201, iHi: 300 },
  { cLo: 425, cHi: 604, iLo: 301, iHi: 500 },
];

function subIndex(bands: Band[], c: number): number {
  // Above the top band the 301–500 line continues; the result is capped at 500 by the caller.
  const band = bands.find((b) => c <= b.cHi) ?? bands[bands.length - 1];
  return Math.round(((band.iHi - band.iLo) / (band.cHi - band.cLo)) * (c - band.cLo) + band.iLo);
}

/** Truncates PM2.5 to 0.1 µg/m³ (with a guard against binary noise such as 9.1 → 9.0999…). */
function truncate(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.floor(value * factor + 1e-9) / factor;
}

export function pm25SubIndex(pm25: number): number {
  return subIndex(PM25, truncate(Math.max(0, pm25), 1));
}

export function pm10SubIndex(pm10: number): number {
  return subIndex(PM10, truncate(Math.max(0, pm10), 0));
}

/** AQI = the larger sub-index of PM2.5 and PM10, capped at 500. */
export function computeAqi(pm25: number, pm10: number): number {
  return Math.min(500, Math.max(pm25SubIndex(pm25), pm10SubIndex(pm10)));
}

export function aqiCategory(aqi: number): AqiCategory {
  if (aqi <= 50) return 'Good';
  if (aqi <= 100) return 'Moderate';
  if (aqi <= 150) return 'Unhealthy for Sensitive Groups';
  if (aqi <= 200) return 'Unhealthy';
  if (aqi <= 300) return 'Very Unhealthy';
  return 'Hazardous';
}
