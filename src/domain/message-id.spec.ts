import { createHash } from 'node:crypto';
import { messageId } from './message-id';

const sha256Prefix = (text: string) =>
  createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16);

describe('messageId (SPEC §1)', () => {
  const ts = '2026-11-26T08:00:00.000Z';

  it('is the first 16 hex chars of SHA-256 of city_id + "_" + timestamp', () => {
    expect(messageId('delhi', ts)).toBe(sha256Prefix('delhi_2026-11-26T08:00:00.000Z'));
  });

  it('appends "_" + station_id when a station is given', () => {
    expect(messageId('delhi', ts, 'anand-vihar')).toBe(
      sha256Prefix('delhi_2026-11-26T08:00:00.000Z_anand-vihar'),
    );
  });

  it('is 16 lowercase hex characters', () => {
    for (const id of [
      messageId('delhi', ts),
      messageId('Mumbai_2', ts, 'ST-1'),
      messageId('x', '2020-01-01T00:00:00.000Z'),
    ]) {
      expect(id).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('is deterministic', () => {
    expect(messageId('delhi', ts, 's1')).toBe(messageId('delhi', ts, 's1'));
  });

  it('changes with the station', () => {
    const none = messageId('delhi', ts);
    const s1 = messageId('delhi', ts, 's1');
    const s2 = messageId('delhi', ts, 's2');
    expect(new Set([none, s1, s2]).size).toBe(3);
  });

  it('changes with the city and with the timestamp', () => {
    expect(messageId('delhi', ts)).not.toBe(messageId('mumbai', ts));
    expect(messageId('delhi', ts)).not.toBe(messageId('delhi', '2026-11-26T08:00:00.001Z'));
  });

  it('hashes the UTF-8 bytes of names outside ASCII', () => {
    expect(messageId('são-paulo', ts, 'estação-1')).toBe(
      sha256Prefix('são-paulo_2026-11-26T08:00:00.000Z_estação-1'),
    );
  });
});
