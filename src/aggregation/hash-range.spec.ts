import { inRange, partitionHash } from './hash-range';

describe('partitionHash', () => {
  it('is the MD5 of the UTF-8 key as an unsigned 128-bit integer, as Kinesis maps it', () => {
    expect(partitionHash('')).toBe(0xd41d8cd98f00b204e9800998ecf8427en);
    expect(partitionHash('abc')).toBe(0x900150983cd24fb0d6963f7d28e17f72n);
    // Multi-byte characters hash as their UTF-8 bytes.
    expect(partitionHash('\u00e9')).toBe(0x66ddcd97cfdeabb2f6fb8a999b4bc76fn);
    // Unsigned: a hash with its top bit set is above 2^127.
    expect(partitionHash('')).toBeGreaterThan(2n ** 127n);
  });

  it('includes both ends of a range', () => {
    const range = { start: 10n, end: 20n };
    expect([9n, 10n, 15n, 20n, 21n].map((h) => inRange(h, range))).toEqual([
      false,
      true,
      true,
      true,
      false,
    ]);
  });
});
