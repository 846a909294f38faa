import { StreamConsumerService } from '../src/stream-consumer/stream-consumer.service';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';

/**
 * A shard empty for 10 s is read once per CONSUMER_IDLE_READ_INTERVAL_MS; a record this instance
 * puts on it wakes its reader at once. With the interval at a minute, a POST readable within
 * seconds can only have been read by the wake.
 */
describe('an idle shard woken by a POST to this instance (real emulators)', () => {
  let t: TestApp;
  const lastRead = () =>
    Date.parse(t.app.get(StreamConsumerService).status().shards[0]?.lastReadAt ?? '');

  beforeAll(async () => {
    t = await startApp(
      isolatedEnv({ KINESIS_SHARD_COUNT: '1', CONSUMER_IDLE_READ_INTERVAL_MS: '60000' }),
    );
  });
  afterAll(() => t?.close());

  it('reads the record at once, not a minute later', async () => {
    // Idle: the last read is more than 2 s old (the busy pace is 4 reads a second).
    await eventually(
      async () => (Date.now() - lastRead() > 2000 ? true : undefined),
      'the shard idle',
      40_000,
    );
    const readBefore = lastRead();
    const body = measurement({ city_id: 'woken' });
    await t.http.post('/measurements').send(body).expect(202);
    const latest = await eventually(
      async () => {
        const r = await t.http.get('/cities/woken/latest');
        return r.status === 200 ? r.body : undefined;
      },
      'the measurement readable, well before the idle read a minute later',
      20_000,
    );
    expect(latest.items[0].timestamp).toBe(body.timestamp);
    expect(lastRead()).toBeGreaterThan(readBefore);
  }, 90_000);
});
