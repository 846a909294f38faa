import { HEAP_GROWING_PERCENT, limitHeapGrowth } from './heap-growth';

describe('limitHeapGrowth', () => {
  it('sets the growing factor when the operator gave none', () => {
    const set: string[] = [];
    expect(
      limitHeapGrowth(['--enable-source-maps', '--max-old-space-size=512'], (f) => set.push(f)),
    ).toBe(true);
    expect(set).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
  });

  it.each([['--heap-growing-percent=100'], ['--heap_growing_percent=20']])(
    'leaves an operator-given factor alone (%s)',
    (arg) => {
      const set: string[] = [];
      expect(limitHeapGrowth(['--inspect', arg], (f) => set.push(f))).toBe(false);
      expect(set).toEqual([]);
    },
  );
});
