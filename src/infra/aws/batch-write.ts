import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

const BATCH_WRITE_MAX = 25;

/** Runs `task` over `items` with at most `limit` at a time; rejects with the first failure. */
export async function runLimited<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]);
  });
  await Promise.all(workers);
}

/**
 * Puts every item with BatchWriteItem, 25 a call and `concurrency` calls at a time, retrying
 * UnprocessedItems with jittered back-off; throws when some are still unprocessed after 10 tries.
 */
export async function putAll(
  db: DynamoDBDocumentClient,
  table: string,
  items: Record<string, unknown>[],
  concurrency: number,
): Promise<void> {
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += BATCH_WRITE_MAX)
    chunks.push(items.slice(i, i + BATCH_WRITE_MAX));
  await runLimited(chunks, concurrency, async (chunk) => {
    let pending = chunk.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 10)
        throw new Error(`${pending.length} item(s) still unprocessed after ${attempt} attempts`);
      if (attempt > 0)
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 20 * 2 ** attempt)));
      const output = await db.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
      pending = (output.UnprocessedItems?.[table] ?? []) as typeof pending;
    }
  });
}
