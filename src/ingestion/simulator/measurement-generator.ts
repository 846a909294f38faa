import { MeasurementInput } from '../../domain/measurement';

export interface SimulatedCity {
  city_id: string;
  city_name: string;
  /** Daily mean PM2.5 in µg/m³. */
  basePm25: number;
  /** Daily mean temperature in °C. */
  baseTemperature: number;
  /** Hours east of UTC, so the daily curve peaks in the city's own morning and evening. */
  utcOffset: number;
}

const CITIES: SimulatedCity[] = [
  { city_id: 'delhi', city_name: 'Delhi', basePm25: 95, baseTemperature: 22, utcOffset: 5.5 },
  { city_id: 'beijing', city_name: 'Beijing', basePm25: 45, baseTemperature: 8, utcOffset: 8 },
  { city_id: 'lahore', city_name: 'Lahore', basePm25: 85, baseTemperature: 20, utcOffset: 5 },
  { city_id: 'dhaka', city_name: 'Dhaka', basePm25: 75, baseTemperature: 24, utcOffset: 6 },
  { city_id: 'cairo', city_name: 'Cairo', basePm25: 40, baseTemperature: 21, utcOffset: 2 },
  { city_id: 'jakarta', city_name: 'Jakarta', basePm25: 35, baseTemperature: 28, utcOffset: 7 },
  {
    city_id: 'mexico-city',
    city_name: 'Mexico City',
    basePm25: 22,
    baseTemperature: 16,
    utcOffset: -6,
  },
  {
    city_id: 'sao-paulo',
    city_name: 'São Paulo',
    basePm25: 16,
    baseTemperature: 21,
    utcOffset: -3,
  },
  { city_id: 'lagos', city_name: 'Lagos', basePm25: 38, baseTemperature: 27, utcOffset: 1 },
  { city_id: 'mumbai', city_name: 'Mumbai', basePm25: 42, baseTemperature: 27, utcOffset: 5.5 },
  { city_id: 'london', city_name: 'London', basePm25: 9, baseTemperature: 8, utcOffset: 0 },
  { city_id: 'paris', city_name: 'Paris', basePm25: 11, baseTemperature: 9, utcOffset: 1 },
  { city_id: 'new-york', city_name: 'New York', basePm25: 8, baseTemperature: 7, utcOffset: -5 },
  {
    city_id: 'los-angeles',
    city_name: 'Los Angeles',
    basePm25: 12,
    baseTemperature: 16,
    utcOffset: -8,
  },
  { city_id: 'tokyo', city_name: 'Tokyo', basePm25: 10, baseTemperature: 11, utcOffset: 9 },
  { city_id: 'seoul', city_name: 'Seoul', basePm25: 20, baseTemperature: 5, utcOffset: 9 },
  { city_id: 'sydney', city_name: 'Sydney', basePm25: 6, baseTemperature: 22, utcOffset: 11 },
  {
    city_id: 'johannesburg',
    city_name: 'Johannesburg',
    basePm25: 25,
    baseTemperature: 19,
    utcOffset: 2,
  },
  { city_id: 'warsaw', city_name: 'Warsaw', basePm25: 18, baseTemperature: 2, utcOffset: 1 },
  { city_id: 'reykjavik', city_name: 'Reykjavík', basePm25: 4, baseTemperature: 1, utcOffset: 0 },
];

/** mulberry32: a small, fast, seedable PRNG, so a seed replays the same load. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The first `count` cities; past the named ones, synthetic cities with varied climates. */
export function simulatedCities(count: number): SimulatedCity[] {
  const cities = CITIES.slice(0, count);
  const random = seededRandom(7);
  for (let i = cities.length; i < count; i++) {
    cities.push({
      city_id: `city-${String(i + 1).padStart(4, '0')}`,
      city_name: `City ${i + 1}`,
      basePm25: 5 + random() * 80,
      baseTemperature: -5 + random() * 35,
      utcOffset: Math.round(random() * 24 - 12),
    });
  }
  return cities;
}

const round1 = (value: number) => Math.round(value * 10) / 10;
const clamp = (value: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, value));

/**
 * Plausible measurements: PM2.5 follows a daily curve with morning and evening rush-hour peaks
 * and a night low, times log-normal-ish noise; PM10 is 1.3–2.1 × PM2.5; temperature peaks mid-afternoon.
 */
export class MeasurementGenerator {
  private readonly random: () => number;

  constructor(
    readonly cities: SimulatedCity[],
    seed = Date.now(),
  ) {
    this.random = seededRandom(seed);
  }

  next(
    at: Date,
    city = this.cities[Math.floor(this.random() * this.cities.length)],
  ): MeasurementInput {
    const localHour = (at.getUTCHours() + at.getUTCMinutes() / 60 + city.utcOffset + 24) % 24;
    const rush =
      Math.exp(-((localHour - 8.5) ** 2) / 4) * 0.6 + Math.exp(-((localHour - 19) ** 2) / 5) * 0.5;
    const dailyFactor = 0.65 + rush;
    const noise = Math.exp((this.random() - 0.5) * 0.4);
    const pm25 = clamp(city.basePm25 * dailyFactor * noise, 0, 1000);
    const pm10 = clamp(pm25 * (1.3 + this.random() * 0.8), 0, 2000);
    const temperature =
      city.baseTemperature +
      5 * Math.sin(((localHour - 9) / 24) * 2 * Math.PI) +
      (this.random() - 0.5);
    return {
      city_id: city.city_id,
      city_name: city.city_name,
      timestamp: at.toISOString(),
      pm25_value: round1(pm25),
      pm10_value: round1(pm10),
      temperature_c: round1(clamp(temperature, -90, 70)),
      station_id: `${city.city_id}-${1 + Math.floor(this.random() * 3)}`,
    };
  }
}
