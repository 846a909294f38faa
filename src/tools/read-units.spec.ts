import { itemSize, readUnits } from './read-units';

describe('read units', () => {
  it('sizes an item by names and values', () => {
    expect(itemSize({ leaseKey: { S: 'shardId-0' } })).toBe(8 + 9);
    expect(itemSize({ n: { N: '12345' } })).toBe(1 + 4);
    expect(itemSize({ b: { BOOL: true }, m: { M: { x: { S: 'ab' } } } })).toBe(
      1 + 1 + 1 + 3 + 1 + 2 + 1,
    );
  });

  it('rounds a Scan page up to 4 KB blocks, one unit each when consistent, half otherwise', () => {
    const big = { leaseKey: { S: 'x'.repeat(3000) } };
    const scan = (consistent: boolean) =>
      readUnits(
        'Scan',
        'leases',
        { TableName: 'leases', ConsistentRead: consistent },
        { Items: [big, big] },
      );
    expect(scan(true)).toBe(2);
    expect(scan(false)).toBe(1);
    expect(
      readUnits('Scan', 'leases', { TableName: 'leases', ConsistentRead: true }, { Items: [] }),
    ).toBe(1);
  });

  it('rounds each item of GetItem and BatchGetItem up, and counts only the table asked for', () => {
    const item = { k: { S: 'x'.repeat(5000) } };
    expect(
      readUnits('GetItem', 'leases', { TableName: 'leases', ConsistentRead: true }, { Item: item }),
    ).toBe(2);
    expect(readUnits('GetItem', 'leases', { TableName: 'other' }, { Item: item })).toBe(0);
    expect(
      readUnits(
        'BatchGetItem',
        'leases',
        { RequestItems: { leases: { ConsistentRead: true } } },
        { Responses: { leases: [item, { k: { S: 'y' } }] } },
      ),
    ).toBe(3);
    expect(readUnits('PutItem', 'leases', { TableName: 'leases' }, {})).toBe(0);
  });
});
