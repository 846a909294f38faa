import { sleep } from './bench-processes';
import { percentile } from './percentile';

export interface VisibilityOptions {
  target: string;
  /** POSTs per second, one measurement each, on a schedule whatever the answers. */
  rate: number;
  count: number;
  pollMs: number;
  waitMs: number;
}

export interface VisibilityResult {
  rate: number;
  samples: number;
  /** POSTs whose measurement was not readable within `waitMs` (counted as infinite). */
  missing: number;
  ackP99Ms: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

/**
 * Visibility as a client sees it: each POST of one measurement, then GET
 * /cities/:cityId/latest every `pollMs` until that measurement is in the answer; the time from
 * the POST's 202 to the first answer that holds it. Each POST has a city of its own, so the answer
 * is one item. Past a second, polls are every 100 ms.
 */
export async function measureVisibility(options: VisibilityOptions): Promise<VisibilityResult> {
  const run = Date.now().toString(36);
  const headers = { 'content-type': 'application/json' };
  const acks: number[] = [];
  const visible: number[] = [];

  async function probe(i: number): Promise<void> {
    const cityId = `bench-visibility-${run}-${i}`;
    const sent = performance.now();
    const res = await fetch(`${options.target}/measurements`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        city_id: cityId,
        city_name: `Visibility ${i}`,
        timestamp: new Date().toISOString(),
        pm25_value: 10 + (i % 50),
        pm10_value: 20 + (i % 80),
        temperature_c: 15,
      }),
    });
    if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
    const acked = performance.now();
    acks.push(acked - sent);
    const [messageId] = ((await res.json()) as { message_ids: string[] }).message_ids;
    while (performance.now() - acked < options.waitMs) {
      const get = await fetch(`${options.target}/cities/${cityId}/latest?limit=1`);
      if (get.status === 200) {
        const { items } = (await get.json()) as { items: { message_id: string }[] };
        if (items[0]?.message_id === messageId) {
          visible.push(performance.now() - acked);
          return;
        }
      } else {
        await get.arrayBuffer();
      }
      // Past a second the figure is far off any target: poll less, so that slow answers do not
      // pile up pollers that slow the service further.
      await sleep(performance.now() - acked < 1000 ? options.pollMs : 100);
    }
    visible.push(Number.POSITIVE_INFINITY);
  }

  const started = performance.now();
  const probes: Promise<void>[] = [];
  for (let i = 0; i < options.count; i++) {
    await sleep(started + (i * 1000) / options.rate - performance.now());
    probes.push(probe(i));
  }
  await Promise.all(probes);
  return {
    rate: options.rate,
    samples: visible.length,
    missing: visible.filter((v) => !Number.isFinite(v)).length,
    ackP99Ms: percentile(acks, 99),
    p50Ms: percentile(visible, 50),
    p95Ms: percentile(visible, 95),
    p99Ms: percentile(visible, 99),
  };
}
