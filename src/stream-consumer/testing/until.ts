/**
 * Polls `condition` on the event loop until it holds (no sleeps as synchronisation), with a
 * deadline in time: a count of turns ran out before real retry timers fired on a loaded machine.
 */
export async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}
