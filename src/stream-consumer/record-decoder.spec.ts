import { createHash } from 'node:crypto';
import { decodeRecord, encodePayload, StreamRecord } from './record-decoder';

const sha256Prefix = (text: string) =>
  createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16);

/** A measurement as the producer puts it on the stream (with the service's fields). */
const produced = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  city_id: 'delhi',
  city_name: 'Delhi',
  timestamp: '2025-06-01T08:00:00.000Z',
  pm25_value: 12.0,
  pm10_value: 80,
  temperature_c: 18.4,
  aqi_value: 63,
  aqi_category: 'Moderate',
  station_id: 'anand-vihar',
  ingestion_timestamp: '2025-06-01T08:00:01.500Z',
  message_id: sha256Prefix('delhi_2025-06-01T08:00:00.000Z_anand-vihar'),
  ...overrides,
});

const record = (data: Uint8Array | string, extra: Partial<StreamRecord> = {}): StreamRecord => ({
  data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data,
  sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
  partitionKey: 'delhi',
  ...extra,
});

const jsonRecord = (value: unknown, extra: Partial<StreamRecord> = {}) =>
  record(JSON.stringify(value), extra);

/** Bytes that are not valid UTF-8 (a lone continuation byte and an invalid lead byte). */
const INVALID_UTF8 = new Uint8Array([0x7b, 0x80, 0xff, 0xfe, 0x7d]);

describe('decodeRecord', () => {
  describe('a valid record', () => {
    it('decodes the measurement as the producer wrote it', () => {
      const decoded = decodeRecord(jsonRecord(produced()));
      expect(decoded).toEqual({ ok: true, measurement: produced() });
    });

    it('recomputes the message id instead of trusting the one on the record', () => {
      const decoded = decodeRecord(jsonRecord(produced({ message_id: 'ffffffffffffffff' })));
      expect(decoded.ok).toBe(true);
      if (decoded.ok) {
        expect(decoded.measurement.message_id).toBe(
          sha256Prefix('delhi_2025-06-01T08:00:00.000Z_anand-vihar'),
        );
      }
    });

    it('normalises the timestamp and derives the id from the normalised time', () => {
      const decoded = decodeRecord(
        jsonRecord(
          produced({
            timestamp: '2025-06-01T13:30:00+05:30',
            station_id: undefined,
            message_id: undefined,
          }),
        ),
      );
      expect(decoded.ok).toBe(true);
      if (decoded.ok) {
        expect(decoded.measurement.timestamp).toBe('2025-06-01T08:00:00.000Z');
        expect(decoded.measurement.message_id).toBe(sha256Prefix('delhi_2025-06-01T08:00:00.000Z'));
        expect('station_id' in decoded.measurement).toBe(false);
      }
    });

    it('keeps the producer ingestion_timestamp', () => {
      const decoded = decodeRecord(
        jsonRecord(produced({ ingestion_timestamp: '2025-06-01T08:00:02.000Z' })),
      );
      expect(decoded.ok && decoded.measurement.ingestion_timestamp).toBe(
        '2025-06-01T08:00:02.000Z',
      );
    });

    it('uses the arrival time when the record has no ingestion_timestamp', () => {
      const decoded = decodeRecord(
        jsonRecord(produced({ ingestion_timestamp: undefined }), {
          arrivedAt: new Date('2025-06-01T08:00:03.000Z'),
        }),
      );
      expect(decoded.ok && decoded.measurement.ingestion_timestamp).toBe(
        '2025-06-01T08:00:03.000Z',
      );
    });

    it('computes the AQI of a record that has none', () => {
      const decoded = decodeRecord(
        jsonRecord(produced({ aqi_value: undefined, aqi_category: undefined })),
      );
      expect(decoded.ok).toBe(true);
      if (decoded.ok) {
        expect(decoded.measurement.aqi_value).toBe(63);
        expect(decoded.measurement.aqi_category).toBe('Moderate');
      }
    });
  });

  describe('parse errors', () => {
    it('rejects bytes that are not UTF-8 as parse_error', () => {
      const decoded = decodeRecord(record(INVALID_UTF8));
      expect(decoded).toEqual({
        ok: false,
        reason: 'parse_error',
        message: 'record data is not valid UTF-8',
      });
    });

    it.each([
      ['plain text', 'hello'],
      ['truncated JSON', '{"city_id":"delhi"'],
      ['empty data', ''],
    ])('rejects %s as parse_error', (_label, text) => {
      const decoded = decodeRecord(record(text));
      expect(decoded).toEqual({
        ok: false,
        reason: 'parse_error',
        message: 'record data is not valid JSON',
      });
    });
  });

  describe('validation errors', () => {
    it.each([
      ['an array', [produced()]],
      ['a number', 42],
      ['a string', 'delhi'],
      ['null', null],
    ])('rejects JSON %s as validation_error', (_label, value) => {
      const decoded = decodeRecord(jsonRecord(value));
      expect(decoded).toEqual({
        ok: false,
        reason: 'validation_error',
        message: 'record data must be a JSON object',
      });
    });

    it('rejects a measurement failing validation, naming the field', () => {
      const decoded = decodeRecord(jsonRecord(produced({ pm25_value: -5 })));
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) {
        expect(decoded.reason).toBe('validation_error');
        expect(decoded.message).toContain('pm25_value');
      }
    });

    it('names a missing field', () => {
      const decoded = decodeRecord(jsonRecord(produced({ city_name: undefined })));
      expect(decoded).toEqual({
        ok: false,
        reason: 'validation_error',
        message: 'city_name is required',
      });
    });

    it('rejects an unknown field', () => {
      const decoded = decodeRecord(jsonRecord(produced({ humidity: 3 })));
      expect(decoded).toEqual({
        ok: false,
        reason: 'validation_error',
        message: 'humidity is not an allowed field',
      });
    });

    it('rejects an ingestion_timestamp that is not an ISO date-time', () => {
      const decoded = decodeRecord(jsonRecord(produced({ ingestion_timestamp: 'yesterday' })));
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) {
        expect(decoded.reason).toBe('validation_error');
        expect(decoded.message).toContain('ingestion_timestamp');
      }
    });

    it('joins several problems', () => {
      const decoded = decodeRecord(jsonRecord(produced({ pm25_value: -5, city_id: 'a b' })));
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) {
        expect(decoded.message).toContain('pm25_value');
        expect(decoded.message).toContain('city_id');
        expect(decoded.message).toContain('; ');
      }
    });
  });
});

describe('encodePayload', () => {
  it('returns UTF-8 text as it is', () => {
    expect(encodePayload(Buffer.from('{"city":"München"}', 'utf8'))).toEqual({
      payload: '{"city":"München"}',
      payload_encoding: 'utf8',
    });
  });

  it('returns an empty payload as empty text', () => {
    expect(encodePayload(new Uint8Array())).toEqual({ payload: '', payload_encoding: 'utf8' });
  });

  it('returns base64 for bytes that are not UTF-8', () => {
    const encoded = encodePayload(INVALID_UTF8);
    expect(encoded).toEqual({ payload: 'e4D//n0=', payload_encoding: 'base64' });
    expect(Buffer.from(encoded.payload, 'base64')).toEqual(Buffer.from(INVALID_UTF8));
  });
});
