import { AQI_CATEGORIES, aqiCategory, computeAqi, pm10SubIndex, pm25SubIndex } from './aqi';

describe('AQI (SPEC §6)', () => {
  describe('the examples of the spec', () => {
    it('PM2.5 12.0 gives 56', () => {
      expect(pm25SubIndex(12.0)).toBe(56);
      expect(computeAqi(12.0, 0)).toBe(56);
    });

    it('PM10 80 gives 63', () => {
      expect(pm10SubIndex(80)).toBe(63);
      expect(computeAqi(0, 80)).toBe(63);
    });

    it('PM2.5 9.05 gives 50 (truncated to 9.0)', () => {
      expect(pm25SubIndex(9.05)).toBe(50);
      expect(computeAqi(9.05, 0)).toBe(50);
    });
  });

  describe('PM2.5: each band edge gives the band edge index', () => {
    it.each([
      [0.0, 0],
      [9.0, 50],
      [9.1, 51],
      [35.4, 100],
      [35.5, 101],
      [55.4, 150],
      [55.5, 151],
      [125.4, 200],
      [125.5, 201],
      [225.4, 300],
      [225.5, 301],
      [325.4, 500],
    ])('PM2.5 %p → %p', (concentration, index) => {
      expect(pm25SubIndex(concentration)).toBe(index);
      expect(computeAqi(concentration, 0)).toBe(index);
    });
  });

  describe('PM10: each band edge gives the band edge index', () => {
    it.each([
      [0, 0],
      [54, 50],
      [55, 51],
      [154, 100],
      [155, 101],
      [254, 150],
      [255, 151],
      [354, 200],
      [355, 201],
      [424, 300],
      [425, 301],
      [604, 500],
    ])('PM10 %p → %p', (concentration, index) => {
      expect(pm10SubIndex(concentration)).toBe(index);
      expect(computeAqi(0, concentration)).toBe(index);
    });
  });

  describe('truncation before the formula', () => {
    it('truncates PM10 to 1 µg/m³ (54.9 → 54 → 50)', () => {
      expect(pm10SubIndex(54.9)).toBe(50);
    });

    it('truncates PM2.5 to 0.1 µg/m³ (35.49 → 35.4 → 100, 9.09 → 9.0 → 50)', () => {
      expect(pm25SubIndex(35.49)).toBe(100);
      expect(pm25SubIndex(9.09)).toBe(50);
    });

    it('does not lose a tenth to binary noise (9.1 stays 9.1 → 51)', () => {
      expect(pm25SubIndex(9.1)).toBe(51);
      expect(pm25SubIndex(55.5)).toBe(151);
    });
  });

  describe('the cap at 500', () => {
    it('caps PM2.5 above the top band at 500', () => {
      expect(computeAqi(325.5, 0)).toBe(500);
      expect(computeAqi(500, 0)).toBe(500);
      expect(computeAqi(1000, 0)).toBe(500);
    });

    it('caps PM10 above the top band at 500', () => {
      expect(computeAqi(0, 605)).toBe(500);
      expect(computeAqi(0, 2000)).toBe(500);
    });

    it('caps when both are above the top', () => {
      expect(computeAqi(1000, 2000)).toBe(500);
    });
  });

  describe('AQI = max of the two sub-indices', () => {
    it('takes PM2.5 when it is the larger', () => {
      // PM2.5 35.5 → 101; PM10 80 → 63
      expect(computeAqi(35.5, 80)).toBe(101);
    });

    it('takes PM10 when it is the larger', () => {
      // PM2.5 12.0 → 56; PM10 255 → 151
      expect(computeAqi(12.0, 255)).toBe(151);
    });

    it('is the common value when both are equal', () => {
      // PM2.5 9.0 → 50; PM10 54 → 50
      expect(computeAqi(9.0, 54)).toBe(50);
    });

    it('is 0 for clean air', () => {
      expect(computeAqi(0, 0)).toBe(0);
    });
  });

  describe('aqiCategory', () => {
    it.each([
      [0, 'Good'],
      [50, 'Good'],
      [51, 'Moderate'],
      [100, 'Moderate'],
      [101, 'Unhealthy for Sensitive Groups'],
      [150, 'Unhealthy for Sensitive Groups'],
      [151, 'Unhealthy'],
      [200, 'Unhealthy'],
      [201, 'Very Unhealthy'],
      [300, 'Very Unhealthy'],
      [301, 'Hazardous'],
      [500, 'Hazardous'],
    ])('AQI %p is %p', (aqi, category) => {
      expect(aqiCategory(aqi)).toBe(category);
    });

    it('knows exactly the six EPA category names', () => {
      expect([...AQI_CATEGORIES]).toEqual([
        'Good',
        'Moderate',
        'Unhealthy for Sensitive Groups',
        'Unhealthy',
        'Very Unhealthy',
        'Hazardous',
      ]);
    });
  });
});
