import { parseArgs } from 'node:util';
import { percentile } from './percentile';

/**
 * `npm run probe:latency -- --target URL --count N`: POSTs N measurements (each for a city of its
 * own, `--concurrency` at a time) and polls GET latest until each is readable; prints the ack
 * latency and the POST-ack → readable latency.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: 'http://localhost:3000' },
      count: { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '10' },
      'api-key': { type: 'string' },
      'poll-ms': { type: 'string', default: '5' },
    },
  });
  const target = values.target!.replace(/\/$/, '');
  const count = Number(values.count);
  const concurrency = Number(values.concurrency);
  const pollMs = Number(values['poll-ms']);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (values['api-key']) headers['x-api-key'] = values['api-key'];
  const run = Date.now().toString(36);
  const acks: number[] = [];
  const visible: number[] = [];
  let next = 0;

  async function probe(i: number): Promise<void> {
    const cityId = `probe-${run}-${i}`;
    const body = {
      city_id: cityId,
      city_name: `Probe ${i}`,
      timestamp: new Date().toISOString(),
      pm25_value: 10 + (i % 50),
      pm10_value: 20 + (i % 80),
      temperature_c: 15,
    };
    const sent = performance.now();
    const res = await fetch(`${target}/measurements`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
    if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
    const acked = performance.now();
    const { message_ids } = (await res.json()) as { message_ids: string[] };
    acks.push(acked - sent);
    const deadline = acked + 30_000;
    for (;;) {
      const get = await fetch(`${target}/cities/${cityId}/latest?limit=1`, { headers });
      if (get.status === 200) {
        const { items } = (await get.json()) as { items: { message_id: string }[] };
        if (items[0]?.message_id === message_ids[0]) break;
      } else {
        await get.arrayBuffer();
      }
      if (performance.now() > deadline) throw new Error(`${cityId} not readable after 30 s`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
    visible.push(performance.now() - acked);
  }

  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await probe(next++);
    }),
  );
  const row = (name: string, v: number[]) =>
    `${name.padEnd(24)} p50 ${percentile(v, 50).toFixed(0).padStart(5)} ms   p90 ${percentile(v, 90).toFixed(0).padStart(5)} ms   p99 ${percentile(v, 99).toFixed(0).padStart(5)} ms   max ${Math.max(
      ...v,
    )
      .toFixed(0)
      .padStart(5)} ms`;
  process.stdout.write(
    `${count} measurements, ${concurrency} at a time, against ${target}\n` +
      `${row('POST → 202', acks)}\n${row('202 → readable (GET)', visible)}\n`,
  );
}

main().catch((error: Error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
