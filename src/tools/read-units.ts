type AttributeValue = {
  S?: string;
  N?: string;
  B?: string;
  BOOL?: boolean;
  NULL?: boolean;
  M?: Record<string, AttributeValue>;
  L?: AttributeValue[];
  SS?: string[];
  NS?: string[];
  BS?: string[];
};
type Item = Record<string, AttributeValue>;

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
const numberSize = (n: string) => Math.ceil(n.replace(/^-|[.]|e.*$/gi, '').length / 2) + 1;

/** An attribute value's size as DynamoDB counts it (names and values, numbers ~2 digits a byte). */
export function valueSize(v: AttributeValue): number {
  if (v.S !== undefined) return utf8(v.S);
  if (v.N !== undefined) return numberSize(v.N);
  if (v.B !== undefined) return Buffer.from(v.B, 'base64').length;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.M) return 3 + Object.entries(v.M).reduce((s, [k, e]) => s + utf8(k) + valueSize(e) + 1, 0);
  if (v.L) return 3 + v.L.reduce((s, e) => s + valueSize(e) + 1, 0);
  if (v.SS) return v.SS.reduce((s, e) => s + utf8(e), 0);
  if (v.NS) return v.NS.reduce((s, e) => s + numberSize(e), 0);
  if (v.BS) return v.BS.reduce((s, e) => s + Buffer.from(e, 'base64').length, 0);
  return 0;
}

export const itemSize = (item: Item) =>
  Object.entries(item).reduce((s, [name, v]) => s + utf8(name) + valueSize(v), 0);

const BLOCK = 4096;

/**
 * Read units one read call consumed on `table`, estimated from the items it returned (DynamoDB
 * Local does not report ConsumedCapacity reliably): a consistent read costs 1 unit per 4 KB
 * (0.5 when eventually consistent); GetItem and BatchGetItem round each item up, Query and Scan
 * round the sum of the page up; every call costs at least one block.
 */
export function readUnits(
  operation: string,
  table: string,
  request: Record<string, unknown>,
  response: Record<string, unknown>,
): number {
  const factor = (consistent: unknown) => (consistent === true ? 1 : 0.5);
  const blocks = (bytes: number) => Math.max(1, Math.ceil(bytes / BLOCK));
  switch (operation) {
    case 'GetItem': {
      if (request.TableName !== table) return 0;
      const item = response.Item as Item | undefined;
      return blocks(item ? itemSize(item) : 0) * factor(request.ConsistentRead);
    }
    case 'Query':
    case 'Scan': {
      if (request.TableName !== table) return 0;
      const items = (response.Items as Item[] | undefined) ?? [];
      return blocks(items.reduce((s, i) => s + itemSize(i), 0)) * factor(request.ConsistentRead);
    }
    case 'BatchGetItem': {
      const asked = (request.RequestItems as Record<string, { ConsistentRead?: boolean }>)?.[table];
      if (!asked) return 0;
      const items = (response.Responses as Record<string, Item[]> | undefined)?.[table] ?? [];
      return items.reduce((s, i) => s + blocks(itemSize(i)), 0) * factor(asked.ConsistentRead);
    }
    default:
      return 0;
  }
}
