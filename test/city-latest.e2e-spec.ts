import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { Measurement, MeasurementInput, normaliseMeasurement } from '../src/domain/measurement';
import { CITIES_PARTITION, SpeedLayerRepository } from '../src/speed-layer/speed-layer.repository';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';
import { injectWireFaults, WireCall } from './support/wire-faults';

/**
 * The per-city latest items are written 25 to a call with conditional PartiQL statements (an
 * UPDATE, an INSERT for a city not seen yet, the UPDATE again after a lost INSERT race). Here
 * against DynamoDB Local: the newest event time wins whatever the order of flushes and writers.
 */
describe('the per-city latest items against DynamoDB Local', () => {
  let t: TestApp;
  let speedLayer: SpeedLayerRepository;

  const at = (minute: number) => new Date(Date.UTC(2026, 1, 2, 9, minute)).toISOString();
  const m = (city: string, minute: number, pm25 = minute) =>
    normaliseMeasurement(
      measurement({
        city_id: city,
        timestamp: at(minute),
        pm25_value: pm25,
      }) as unknown as MeasurementInput,
      new Date(),
    );
  const stored = async (city: string) =>
    (
      await t.db.send(
        new GetCommand({
          TableName: t.config.tables.realtime,
          Key: { city_id: CITIES_PARTITION, sk: city },
          ConsistentRead: true,
        }),
      )
    ).Item?.latest as Measurement | undefined;
  const write = async (repository: SpeedLayerRepository, measurements: Measurement[]) => {
    await repository.write(measurements);
    await repository.flushLatest();
  };

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1', CONSUMER_ENABLED: 'false' }));
    speedLayer = t.app.get(SpeedLayerRepository);
  });
  afterAll(() => t?.close());

  it('writes more cities than one call takes, new ones and known ones, newest event time kept', async () => {
    const cities = Array.from({ length: 60 }, (_, i) => `many-${String(i).padStart(2, '0')}`);
    // Half the cities exist already: 20 with an older measurement, 10 with a newer one.
    await write(
      speedLayer,
      cities.slice(0, 30).map((city, i) => m(city, i < 20 ? 10 : 50)),
    );
    await write(
      speedLayer,
      cities.map((city) => m(city, 30)),
    );
    const minutes = await Promise.all(cities.map(async (city) => (await stored(city))?.pm25_value));
    expect(minutes).toEqual(cities.map((_, i) => (i >= 20 && i < 30 ? 50 : 30)));
  });

  it('stores each measurement as its own item: the measurement, its sort key, ttl and stored_at, as the document client reads them', async () => {
    const one = m('item-fields', 12);
    const before = Date.now();
    await speedLayer.write([one, { ...one }]);
    const { Item } = await t.db.send(
      new GetCommand({
        TableName: t.config.tables.realtime,
        Key: { city_id: 'item-fields', sk: `${one.timestamp}#${one.message_id}` },
        ConsistentRead: true,
      }),
    );
    const { ttl, stored_at: storedAt, ...rest } = Item!;
    expect(rest).toEqual({ ...one, sk: `${one.timestamp}#${one.message_id}` });
    expect(storedAt).toBeGreaterThanOrEqual(before);
    expect(storedAt).toBeLessThanOrEqual(Date.now());
    expect(ttl).toBe(Math.floor((storedAt as number) / 1000) + t.config.speedLayer.ttlHours * 3600);
  });

  it('keeps the newest event time when two writers race for a city not seen yet', async () => {
    const other = new SpeedLayerRepository(t.db, t.config);
    for (let round = 0; round < 5; round++) {
      const city = `race-${round}`;
      const older = m(city, 1);
      const newer = m(city, 2);
      const [first, second] = round % 2 === 0 ? [speedLayer, other] : [other, speedLayer];
      await Promise.all([write(first, [older]), write(second, [newer])]);
      expect((await stored(city))?.message_id).toBe(newer.message_id);
    }
  });

  it('does not replace a newer latest with an older one flushed later', async () => {
    await write(speedLayer, [m('late-flush', 40)]);
    await write(speedLayer, [m('late-flush', 5), m('late-flush', 20)]);
    expect((await stored('late-flush'))?.pm25_value).toBe(40);
    await write(speedLayer, [m('late-flush', 41)]);
    expect((await stored('late-flush'))?.pm25_value).toBe(41);
    const { items } = await speedLayer.cities(1000);
    expect(items.find((c) => c.city_id === 'late-flush')?.latest.pm25_value).toBe(41);
  });

  it("writes a writer's (a shard's) cities on its own flush only", async () => {
    await speedLayer.write([m('shard-a-city', 7)], 'shard-a');
    await speedLayer.write([m('shard-b-city', 8)], 'shard-b');
    await speedLayer.flushLatest('shard-a');
    expect((await stored('shard-a-city'))?.pm25_value).toBe(7);
    expect(await stored('shard-b-city')).toBeUndefined();
    await speedLayer.flushLatest('shard-a');
    expect(await stored('shard-b-city')).toBeUndefined();
    await speedLayer.write([m('shard-a-city', 9)], 'shard-a');
    await speedLayer.flushLatest('shard-b');
    expect((await stored('shard-a-city'))?.pm25_value).toBe(7);
    await speedLayer.flushLatest('shard-a');
    expect((await stored('shard-b-city'))?.pm25_value).toBe(8);
    expect((await stored('shard-a-city'))?.pm25_value).toBe(9);
  });

  it('forgets what a dropped writer noted', async () => {
    await speedLayer.write([m('dropped-city', 3)], 'shard-gone');
    speedLayer.dropLatest('shard-gone');
    await speedLayer.flushLatest('shard-gone');
    expect(await stored('dropped-city')).toBeUndefined();
  });

  /** The cities a BatchExecuteStatement writes, from its statements' parameters as sent. */
  const citiesOf = ({ input }: WireCall, prefix: string) =>
    (input.Statements as { Parameters: { S?: string }[] }[]).flatMap((statement) =>
      statement.Parameters.flatMap((p) => (p.S?.startsWith(prefix) ? [p.S] : [])),
    );

  it('sends the flushes of shards that flush while a call is in flight in one call; each settles once its own cities are written', async () => {
    const shards = ['a', 'b', 'c'];
    for (const shard of shards) await write(speedLayer, [m(`together-${shard}`, 1)]);
    const calls: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const stop = injectWireFaults(t.dynamoDb, (call) => {
      const cities = call.operation === 'BatchExecuteStatement' ? citiesOf(call, 'together-') : [];
      if (cities.length === 0) return undefined;
      calls.push(cities.sort());
      return calls.length === 1 ? { after: gate } : undefined;
    });
    try {
      for (const shard of shards)
        await speedLayer.write([m(`together-${shard}`, 2)], `shard-${shard}`);
      const a = speedLayer.flushLatest('shard-a');
      await eventually(async () => (calls.length === 1 ? true : undefined), 'the first call');
      let settledB = false;
      const b = speedLayer.flushLatest('shard-b').then(() => (settledB = true));
      const c = speedLayer.flushLatest('shard-c');
      // Their statements are submitted within this turn of the event loop (no I/O before).
      await new Promise((resolve) => setImmediate(resolve));
      expect(calls).toHaveLength(1);
      expect(settledB).toBe(false);
      release();
      await Promise.all([a, b, c]);
      expect(calls).toEqual([['together-a'], ['together-b', 'together-c']]);
    } finally {
      stop();
      release();
    }
    for (const shard of shards) expect((await stored(`together-${shard}`))?.pm25_value).toBe(2);
  });

  it('does not note again what a writer noted once it was dropped while its flush failed', async () => {
    let failNow!: () => void;
    const failed = new Promise<void>(
      (_, reject) => (failNow = () => reject(new Error('injected reset'))),
    );
    failed.catch(() => undefined);
    let seen = false;
    const stop = injectWireFaults(t.dynamoDb, (call) => {
      if (call.operation !== 'BatchExecuteStatement' || citiesOf(call, 'moved-').length === 0)
        return undefined;
      seen = true;
      return { after: failed };
    });
    try {
      await speedLayer.write([m('moved-before', 1)], 'shard-moved');
      const flush = speedLayer.flushLatest('shard-moved').then(
        () => 'written',
        (error: unknown) => String(error),
      );
      await eventually(async () => (seen ? true : undefined), 'the flush in flight');
      // The lease moved: the poller ends and drops its writer while the flush is in flight.
      speedLayer.dropLatest('shard-moved');
      failNow();
      expect(await flush).toBe('Error: injected reset');
    } finally {
      stop();
    }
    // The lease's next owner here starts with nothing noted: it reads the records again.
    await speedLayer.write([m('moved-after', 2)], 'shard-moved');
    await speedLayer.flushLatest('shard-moved');
    expect((await stored('moved-after'))?.pm25_value).toBe(2);
    expect(await stored('moved-before')).toBeUndefined();
  });
});
