import { ConfigError, loadConfig, startedBy } from './app.config';

/** Runs loadConfig expecting it to throw, and returns the ConfigError. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig (SPEC §4)', () => {
  describe('defaults of an empty environment', () => {
    const config = loadConfig({});

    it('listens on port 3000', () => {
      expect(config.port).toBe(3000);
    });

    it('uses the embedded backend with its data dir and ports', () => {
      expect(config.backend).toBe('embedded');
      expect(config.embedded).toEqual({ dataDir: '.data', kinesisPort: 4567, dynamoDbPort: 8000 });
    });

    it('provisions resources when embedded', () => {
      expect(config.provisionResources).toBe(true);
    });

    it('uses the stream air-quality-stream with 4 shards', () => {
      expect(config.stream).toEqual({ name: 'air-quality-stream', shardCount: 4 });
    });

    it('uses the plan table names', () => {
      expect(config.tables).toEqual({
        realtime: 'air-quality-realtime',
        aggregates: 'air-quality-aggregates',
        dlq: 'air-quality-dlq',
        leases: 'air-quality-leases',
        state: 'air-quality-shard-state',
      });
    });

    it('lingers 20 ms with a 10 s deadline', () => {
      expect(config.producer.lingerMs).toBe(20);
      expect(config.producer.deadlineMs).toBe(10000);
    });

    it('runs the consumer with a 10 s failover, 5 s longest back-off, unready after 60 s stalled, 4 reads a second a shard, one a second once idle', () => {
      expect(config.consumer).toEqual({
        enabled: true,
        leaseFailoverMs: 10000,
        backoffMaxMs: 5000,
        stallUnreadyMs: 60000,
        readsPerSecond: 4,
        idleReadIntervalMs: 1500,
      });
    });

    it('caps open windows at 20,000 per shard', () => {
      expect(config.aggregation.maxOpenWindows).toBe(20000);
    });

    it('keeps the simulator off with 20 cities at 10/s', () => {
      expect(config.simulator).toEqual({ enabled: false, cities: 20, rate: 10 });
    });

    it('keeps the speed layer 24 h, no API keys, log level info', () => {
      expect(config.speedLayer.ttlHours).toBe(24);
      expect(config.apiKeys).toEqual([]);
      expect(config.logLevel).toBe('info');
    });
  });

  describe('PROVISION_RESOURCES', () => {
    it('is false by default when BACKEND=aws', () => {
      expect(loadConfig({ BACKEND: 'aws' }).provisionResources).toBe(false);
    });

    it('is true when BACKEND=aws and PROVISION_RESOURCES=true', () => {
      expect(loadConfig({ BACKEND: 'aws', PROVISION_RESOURCES: 'true' }).provisionResources).toBe(
        true,
      );
    });

    it('is false when embedded and PROVISION_RESOURCES=false', () => {
      expect(loadConfig({ PROVISION_RESOURCES: 'false' }).provisionResources).toBe(false);
    });

    it('an empty PROVISION_RESOURCES means unset', () => {
      expect(loadConfig({ BACKEND: 'aws', PROVISION_RESOURCES: '' }).provisionResources).toBe(
        false,
      );
      expect(loadConfig({ PROVISION_RESOURCES: '' }).provisionResources).toBe(true);
    });
  });

  describe('SIMULATOR_ENABLED', () => {
    it('is on under npm start with the embedded backend', () => {
      expect(loadConfig({}, { byNpmStart: true }).simulator.enabled).toBe(true);
    });

    it('is off under npm start with BACKEND=aws: never simulated data into real AWS by default', () => {
      expect(loadConfig({ BACKEND: 'aws' }, { byNpmStart: true }).simulator.enabled).toBe(false);
      expect(
        loadConfig({ BACKEND: 'aws', SIMULATOR_ENABLED: 'true' }, { byNpmStart: true }).simulator
          .enabled,
      ).toBe(true);
    });

    it('is on with SIMULATOR_ENABLED=true', () => {
      expect(loadConfig({ SIMULATOR_ENABLED: 'true' }).simulator.enabled).toBe(true);
    });

    it('SIMULATOR_ENABLED=false wins over npm start', () => {
      expect(
        loadConfig({ SIMULATOR_ENABLED: 'false' }, { byNpmStart: true }).simulator.enabled,
      ).toBe(false);
    });

    it('npm start is told by npm_lifecycle_event', () => {
      expect(startedBy({ npm_lifecycle_event: 'start' })).toEqual({ byNpmStart: true });
      expect(startedBy({ npm_lifecycle_event: 'test' })).toEqual({ byNpmStart: false });
      expect(startedBy({})).toEqual({ byNpmStart: false });
    });
  });

  describe('TRUST_PROXY', () => {
    it('is false by default, and when empty', () => {
      expect(loadConfig({}).trustProxy).toBe(false);
      expect(loadConfig({ TRUST_PROXY: '' }).trustProxy).toBe(false);
    });

    it.each([
      ['true', true],
      ['FALSE', false],
      ['1', 1],
      ['2', 2],
      ['loopback', ['loopback']],
      ['10.0.0.0/8, 192.168.1.7', ['10.0.0.0/8', '192.168.1.7']],
      ['loopback,fc00::/7,::1', ['loopback', 'fc00::/7', '::1']],
      ['10.0.0.0/255.0.0.0', ['10.0.0.0/255.0.0.0']],
    ])('%p is %p', (value, expected) => {
      expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toEqual(expected);
    });
  });

  describe('values from the environment', () => {
    it('reads numbers and names', () => {
      const config = loadConfig({
        PORT: '8080',
        KINESIS_STREAM_NAME: 'other-stream',
        KINESIS_SHARD_COUNT: '2',
        PRODUCER_LINGER_MS: '5',
        PRODUCER_DEADLINE_MS: '2000',
        DYNAMODB_DLQ_TABLE: 'my-dlq',
      });
      expect(config.port).toBe(8080);
      expect(config.stream).toEqual({ name: 'other-stream', shardCount: 2 });
      expect(config.producer.lingerMs).toBe(5);
      expect(config.producer.deadlineMs).toBe(2000);
      expect(config.tables.dlq).toBe('my-dlq');
    });

    it("DATA_DIR='' keeps the emulators in memory (dataDir null)", () => {
      expect(loadConfig({ DATA_DIR: '' }).embedded.dataDir).toBeNull();
    });

    it('DATA_DIR is passed through when set', () => {
      expect(loadConfig({ DATA_DIR: '/tmp/aq' }).embedded.dataDir).toBe('/tmp/aq');
    });

    it('API_KEYS "a, b,," gives [a, b]', () => {
      expect(loadConfig({ API_KEYS: 'a, b,,' }).apiKeys).toEqual(['a', 'b']);
    });

    it('CURSOR_SECRET is empty by default, kept when 32 characters or more, and never shown when refused', () => {
      expect(loadConfig({}).cursorSecret).toBe('');
      const secret = 's'.repeat(32);
      expect(loadConfig({ CURSOR_SECRET: secret }).cursorSecret).toBe(secret);
      expect(() => loadConfig({ CURSOR_SECRET: 'short-secret' })).toThrow(
        /^Invalid configuration: CURSOR_SECRET="…": CURSOR_SECRET must be at least 32 characters/,
      );
    });

    it('CONSUMER_READS_PER_SECOND is 4 by default, takes fractions, and at most the 5 Kinesis allows', () => {
      expect(loadConfig({}).consumer.readsPerSecond).toBe(4);
      expect(loadConfig({ CONSUMER_READS_PER_SECOND: '2.5' }).consumer.readsPerSecond).toBe(2.5);
      expect(() => loadConfig({ CONSUMER_READS_PER_SECOND: '6' })).toThrow(
        /^Invalid configuration: CONSUMER_READS_PER_SECOND="6"/,
      );
      expect(() => loadConfig({ CONSUMER_READS_PER_SECOND: 'fast' })).toThrow(
        /CONSUMER_READS_PER_SECOND/,
      );
    });

    it('CONSUMER_IDLE_READ_INTERVAL_MS is 1500 by default, from 200 ms to a minute', () => {
      expect(loadConfig({}).consumer.idleReadIntervalMs).toBe(1500);
      expect(
        loadConfig({ CONSUMER_IDLE_READ_INTERVAL_MS: '2500' }).consumer.idleReadIntervalMs,
      ).toBe(2500);
      expect(() => loadConfig({ CONSUMER_IDLE_READ_INTERVAL_MS: '100' })).toThrow(
        /^Invalid configuration: CONSUMER_IDLE_READ_INTERVAL_MS="100"/,
      );
    });

    it('ignores variables it does not know', () => {
      expect(loadConfig({ HOME: '/root', SOMETHING_ELSE: 'x' }).port).toBe(3000);
    });
  });

  describe('bad configuration throws one line naming the variable', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '70000'],
      ['BACKEND', 'gcp'],
      ['KINESIS_SHARD_COUNT', '0'],
      ['SIMULATOR_ENABLED', 'maybe'],
      ['PROVISION_RESOURCES', 'perhaps'],
      ['PRODUCER_LINGER_MS', '-1'],
      ['LOG_LEVEL', 'loud'],
      ['TRUST_PROXY', 'yes-please'],
      ['TRUST_PROXY', '10.0.0.0/33'],
      ['TRUST_PROXY', '10.0.0.1,,10.0.0.2'],
      ['TRUST_PROXY', '-1'],
      ['DYNAMODB_REALTIME_TABLE', 'a b'],
      ['AWS_ENDPOINT_URL', 'localhost:4566'],
    ])('%s=%p', (name, value) => {
      const error = configError({ [name]: value });
      expect(error.message).toContain(name);
      expect(error.message).toContain(value);
      expect(error.message).not.toContain('\n');
      expect(error.message.length).toBeGreaterThan(name.length + value.length);
    });

    it('names the bad variable, not a good one next to it', () => {
      const error = configError({ PORT: '3001', KINESIS_SHARD_COUNT: '0' });
      expect(error.message).toContain('KINESIS_SHARD_COUNT');
      expect(error.message).not.toContain('PORT');
    });
  });

  describe('security settings', () => {
    it('refuses NODE_ENV=production without API_KEYS, in one line naming API_KEYS', () => {
      expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError);
      expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
        /^Invalid configuration: API_KEYS[^\n]*$/,
      );
      expect(loadConfig({ NODE_ENV: 'production', API_KEYS: 'k' }).apiKeys).toEqual(['k']);
      expect(
        loadConfig({ NODE_ENV: 'production', ALLOW_ANONYMOUS_WRITES: 'true' }).apiKeys,
      ).toEqual([]);
    });

    it('defaults to 600 writes a minute, 0 turning the limit off, and open reads', () => {
      expect(loadConfig({}).rateLimitPerMinute).toBe(600);
      expect(loadConfig({ RATE_LIMIT_PER_MINUTE: '0' }).rateLimitPerMinute).toBe(0);
      expect(loadConfig({}).readApiKeysRequired).toBe(false);
      expect(() => loadConfig({ READ_API_KEYS_REQUIRED: 'true' })).toThrow(
        /READ_API_KEYS_REQUIRED/,
      );
    });

    it('never shows a key in an error', () => {
      expect(() => loadConfig({ API_KEYS: 'secret-key', PORT: 'x' })).toThrow(/PORT/);
      try {
        loadConfig({ API_KEYS: 'secret-key', PORT: 'x' });
      } catch (error) {
        expect((error as Error).message).not.toContain('secret-key');
      }
    });
  });
});
