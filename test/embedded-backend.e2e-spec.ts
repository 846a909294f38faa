import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AwsEndpoints } from '../src/infra/aws/aws-clients';
import { AWS_ENDPOINTS } from '../src/infra/aws/aws.tokens';
import { eventually, measurement, startApp } from './support/test-app';

const reachable = (url: string) =>
  fetch(url, { method: 'POST', signal: AbortSignal.timeout(2000) }).then(
    () => true,
    () => false,
  );

/** What `npm start` runs: BACKEND=embedded starts, provisions and stops its own emulators. */
describe('BACKEND=embedded', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'aq-embedded-'));
  const env = {
    BACKEND: 'embedded',
    DATA_DIR: dataDir,
    EMBEDDED_KINESIS_PORT: '0',
    EMBEDDED_DYNAMODB_PORT: '0',
    KINESIS_SHARD_COUNT: '2',
    LOG_LEVEL: 'error',
  };
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('runs the whole path on its own emulators, stops them with the app, and keeps the data in DATA_DIR', async () => {
    const first = await startApp(env);
    const endpoints = first.app.get<AwsEndpoints>(AWS_ENDPOINTS);
    let messageId: string;
    try {
      const post = await first.http
        .post('/measurements')
        .send(measurement({ city_id: 'embedded' }))
        .expect(202);
      messageId = post.body.message_ids[0];
      await eventually(
        async () =>
          (await first.http.get('/cities/embedded/latest')).status === 200 ? true : undefined,
        'the record',
      );
    } finally {
      await first.close();
    }
    expect(await reachable(endpoints.kinesis!)).toBe(false);
    expect(await reachable(endpoints.dynamoDb!)).toBe(false);

    const second = await startApp(env);
    try {
      const latest = await second.http.get('/cities/embedded/latest').expect(200);
      expect(latest.body.items.map((m: { message_id: string }) => m.message_id)).toEqual([
        messageId,
      ]);
      await second.http
        .post('/measurements')
        .send(measurement({ city_id: 'embedded' }))
        .expect(202);
      await eventually(async () => {
        const r = await second.http.get('/cities/embedded/latest');
        return r.body.items?.length === 2 ? true : undefined;
      }, 'the second record');
    } finally {
      await second.close();
    }
    // Two starts of both emulators (a JVM each time): about a minute on a busy 2-core machine.
  }, 180_000);
});
