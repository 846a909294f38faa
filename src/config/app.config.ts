import { plainToInstance, Transform } from 'class-transformer';
import { AggregationSettings, parseWindowSizes } from '../domain/windows';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  validateSync,
  ValidateBy,
  ValidateIf,
} from 'class-validator';
import { isIP } from 'node:net';

const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
const toBool = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return value;
};
const RESOURCE_NAME = /^[A-Za-z0-9_.-]{3,128}$/;

/** Express's `trust proxy`: false, true, a hop count, or addresses and subnets. */
export type TrustProxy = boolean | number | string[];

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const isProxyAddress = (entry: string) => {
  if (PROXY_NAMES.has(entry)) return true;
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return isIP(bits) === family;
  return Number(bits) <= (family === 4 ? 32 : 128);
};
const toTrustProxy = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^\d{1,3}$/.test(v)) return Number(v);
  const entries = v.split(',').map((e) => e.trim());
  return entries.every((e) => e.length > 0 && isProxyAddress(e)) ? entries : value;
};
const IsTrustProxy = () =>
  ValidateBy({
    name: 'isTrustProxy',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'boolean' || typeof value === 'number' || Array.isArray(value),
      defaultMessage: () =>
        'TRUST_PROXY must be true, false, a hop count, or a comma list of addresses, subnets (CIDR) or loopback/linklocal/uniquelocal',
    },
  });

/** The environment as the service reads it: every variable of SPEC §4, validated once at start-up. */
class EnvironmentVariables {
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) PORT = 3000;
  @IsIn(['embedded', 'aws']) BACKEND: 'embedded' | 'aws' = 'embedded';
  @IsString() DATA_DIR = '.data';
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) EMBEDDED_KINESIS_PORT = 4567;
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) EMBEDDED_DYNAMODB_PORT = 8000;
  @IsOptional() @Transform(toBool) @IsBoolean() PROVISION_RESOURCES?: boolean;
  @Matches(/^[A-Za-z0-9_.-]{1,128}$/) KINESIS_STREAM_NAME = 'air-quality-stream';
  @Transform(toInt) @IsInt() @Min(1) @Max(500) KINESIS_SHARD_COUNT = 4;
  @Matches(RESOURCE_NAME) DYNAMODB_REALTIME_TABLE = 'air-quality-realtime';
  @Matches(RESOURCE_NAME) DYNAMODB_AGGREGATES_TABLE = 'air-quality-aggregates';
  @Matches(RESOURCE_NAME) DYNAMODB_DLQ_TABLE = 'air-quality-dlq';
  @Matches(RESOURCE_NAME) DYNAMODB_LEASE_TABLE = 'air-quality-leases';
  @Matches(RESOURCE_NAME) DYNAMODB_STATE_TABLE = 'air-quality-shard-state';
  @Transform(toBool) @IsBoolean() CONSUMER_ENABLED = true;
  @IsOptional() @Transform(toBool) @IsBoolean() SIMULATOR_ENABLED?: boolean;
  @Transform(toInt) @IsInt() @Min(1) @Max(1000) SIMULATOR_CITIES = 20;
  @Transform(toInt) @IsInt() @Min(1) @Max(100000) SIMULATOR_RATE = 10;
  @Transform(toInt) @IsInt() @Min(0) @Max(10000) PRODUCER_LINGER_MS = 20;
  @Transform(toInt) @IsInt() @Min(100) @Max(600000) PRODUCER_DEADLINE_MS = 10000;
  @Transform(toInt) @IsInt() @Min(1000) @Max(600000) LEASE_FAILOVER_MS = 10000;
  @Transform(toInt) @IsInt() @Min(10) @Max(600_000) CONSUMER_BACKOFF_MAX_MS = 5000;
  @Transform(toNumber)
  @IsNumber({}, { message: 'CONSUMER_READS_PER_SECOND must be a number' })
  @Min(0.1)
  @Max(5)
  CONSUMER_READS_PER_SECOND = 4;
  @Transform(toInt) @IsInt() @Min(200) @Max(60_000) CONSUMER_IDLE_READ_INTERVAL_MS = 1500;
  @Transform(toInt) @IsInt() @Min(1000) @Max(86_400_000) CONSUMER_STALL_UNREADY_MS = 60000;
  @Transform(toInt) @IsInt() @Min(1) @Max(24 * 365) SPEED_LAYER_TTL_HOURS = 24;
  @Matches(/^\s*\d{1,4}[mh]\s*(,\s*\d{1,4}[mh]\s*)*$/, {
    message: 'AGGREGATION_WINDOWS must be a comma list like 5m or 1m,5m,1h',
  })
  AGGREGATION_WINDOWS = '5m';
  @Transform(toInt) @IsInt() @Min(0) @Max(3_600_000) AGGREGATION_OUT_OF_ORDERNESS_MS = 5000;
  @Transform(toInt) @IsInt() @Min(0) @Max(86_400_000) AGGREGATION_ALLOWED_LATENESS_MS = 30000;
  @Transform(toInt) @IsInt() @Min(100) @Max(86_400_000) AGGREGATION_IDLE_MS = 10000;
  @Transform(toInt) @IsInt() @Min(50) @Max(600_000) AGGREGATION_FLUSH_MS = 1000;
  @Transform(toInt) @IsInt() @Min(10) @Max(1_000_000) AGGREGATION_MAX_OPEN_WINDOWS = 20000;
  @IsString() API_KEYS = '';
  @ValidateIf((v: EnvironmentVariables) => v.CURSOR_SECRET !== '')
  @MinLength(32, { message: 'CURSOR_SECRET must be at least 32 characters (or empty)' })
  @IsString()
  CURSOR_SECRET = '';
  @Transform(toBool) @IsBoolean() READ_API_KEYS_REQUIRED = false;
  @Transform(toBool) @IsBoolean() ALLOW_ANONYMOUS_WRITES = false;
  @Transform(toInt) @IsInt() @Min(0) @Max(1_000_000) RATE_LIMIT_PER_MINUTE = 600;
  @Transform(toTrustProxy) @IsTrustProxy() TRUST_PROXY: TrustProxy = false;
  @IsString() NODE_ENV = 'development';
  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'verbose']) LOG_LEVEL = 'info';
  @IsOptional() @IsString() AWS_REGION?: string;
  @IsOptional() @Matches(/^https?:\/\/\S+$/) AWS_ENDPOINT_URL?: string;
  @IsOptional() @Matches(/^https?:\/\/\S+$/) AWS_ENDPOINT_URL_KINESIS?: string;
  @IsOptional() @Matches(/^https?:\/\/\S+$/) AWS_ENDPOINT_URL_DYNAMODB?: string;
}

export type LogLevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'verbose';

export interface AppConfig {
  port: number;
  backend: 'embedded' | 'aws';
  embedded: { dataDir: string | null; kinesisPort: number; dynamoDbPort: number };
  provisionResources: boolean;
  aws: { region: string; kinesisEndpoint?: string; dynamoDbEndpoint?: string };
  stream: { name: string; shardCount: number };
  /** `state`: each shard's window state, saved with its checkpoint, read only at takeover. */
  tables: { realtime: string; aggregates: string; dlq: string; leases: string; state: string };
  producer: { lingerMs: number; deadlineMs: number; maxBufferedRecords: number };
  consumer: {
    enabled: boolean;
    leaseFailoverMs: number;
    /** The longest wait between two tries of a failing call (outages are retried without end). */
    backoffMaxMs: number;
    /** Readiness turns 503 once every held shard has been stalled this long. */
    stallUnreadyMs: number;
    /**
     * GetRecords calls per second on each shard (Kinesis allows 5 for all readers of a shard
     * together); 4 leaves one for another reader, such as the batch layer's Firehose.
     */
    readsPerSecond: number;
    /**
     * Time between two reads of a shard that has been empty for 10 s; records this process puts
     * on the shard wake its reader at once.
     */
    idleReadIntervalMs: number;
  };
  simulator: { enabled: boolean; cities: number; rate: number };
  speedLayer: { ttlHours: number };
  aggregation: AggregationSettings & { flushMs: number };
  apiKeys: string[];
  readApiKeysRequired: boolean;
  /** The key page cursors are signed with, shared by every instance; empty: one per process. */
  cursorSecret: string;
  /** Write requests per minute per key (per client address when anonymous); 0: off. */
  rateLimitPerMinute: number;
  /** Express's `trust proxy`, so that req.ip (rate limits, logs) is the client behind a proxy. */
  trustProxy: TrustProxy;
  logLevel: LogLevelName;
}

export class ConfigError extends Error {}

function windowSizes(list: string) {
  try {
    return parseWindowSizes(list);
  } catch (error) {
    throw new ConfigError(
      `Invalid configuration: AGGREGATION_WINDOWS=${JSON.stringify(list)}: ${(error as Error).message}`,
    );
  }
}

const EMPTY_MEANS_UNSET = new Set([
  'PROVISION_RESOURCES',
  'SIMULATOR_ENABLED',
  'TRUST_PROXY',
  'AWS_REGION',
]);

/** How the process was started, as far as loadConfig's defaults care. */
export const startedBy = (env: Record<string, string | undefined>) => ({
  byNpmStart: env.npm_lifecycle_event === 'start',
});

/**
 * Reads and validates the configuration; throws a ConfigError whose message is one line naming the
 * first bad variable. `started.byNpmStart` turns the simulator on by default, with the embedded
 * backend only: never against real AWS unless SIMULATOR_ENABLED=true.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  started: { byNpmStart?: boolean } = {},
): AppConfig {
  const known = Object.keys(new EnvironmentVariables());
  const picked: Record<string, string> = {};
  for (const key of [
    ...known,
    'PROVISION_RESOURCES',
    'SIMULATOR_ENABLED',
    'AWS_REGION',
    'AWS_ENDPOINT_URL',
    'AWS_ENDPOINT_URL_KINESIS',
    'AWS_ENDPOINT_URL_DYNAMODB',
  ]) {
    const value = env[key];
    if (value === undefined) continue;
    if (value.trim() === '' && (EMPTY_MEANS_UNSET.has(key) || key.startsWith('AWS_ENDPOINT')))
      continue;
    picked[key] = value;
  }
  const vars = plainToInstance(EnvironmentVariables, picked);
  const errors = validateSync(vars, { forbidUnknownValues: true });
  if (errors.length > 0) {
    const first = errors[0];
    // A key must never reach a log line, even a bad one.
    const shown =
      first.property === 'API_KEYS' || first.property === 'CURSOR_SECRET'
        ? '"…"'
        : JSON.stringify(String(picked[first.property] ?? ''));
    throw new ConfigError(
      `Invalid configuration: ${first.property}=${shown}: ${Object.values(first.constraints ?? {})[0] ?? 'invalid value'}`,
    );
  }
  const apiKeys = vars.API_KEYS.split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (vars.NODE_ENV === 'production' && apiKeys.length === 0 && !vars.ALLOW_ANONYMOUS_WRITES) {
    throw new ConfigError(
      'Invalid configuration: API_KEYS is empty with NODE_ENV=production: set API_KEYS, or ALLOW_ANONYMOUS_WRITES=true to accept anonymous writes',
    );
  }
  if (vars.READ_API_KEYS_REQUIRED && apiKeys.length === 0) {
    throw new ConfigError('Invalid configuration: READ_API_KEYS_REQUIRED=true needs API_KEYS');
  }
  const embedded = vars.BACKEND === 'embedded';
  return {
    port: vars.PORT,
    backend: vars.BACKEND,
    embedded: {
      dataDir: vars.DATA_DIR.trim() === '' ? null : vars.DATA_DIR,
      kinesisPort: vars.EMBEDDED_KINESIS_PORT,
      dynamoDbPort: vars.EMBEDDED_DYNAMODB_PORT,
    },
    provisionResources: vars.PROVISION_RESOURCES ?? embedded,
    aws: {
      region: vars.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
      kinesisEndpoint: vars.AWS_ENDPOINT_URL_KINESIS ?? vars.AWS_ENDPOINT_URL,
      dynamoDbEndpoint: vars.AWS_ENDPOINT_URL_DYNAMODB ?? vars.AWS_ENDPOINT_URL,
    },
    stream: { name: vars.KINESIS_STREAM_NAME, shardCount: vars.KINESIS_SHARD_COUNT },
    tables: {
      realtime: vars.DYNAMODB_REALTIME_TABLE,
      aggregates: vars.DYNAMODB_AGGREGATES_TABLE,
      dlq: vars.DYNAMODB_DLQ_TABLE,
      leases: vars.DYNAMODB_LEASE_TABLE,
      state: vars.DYNAMODB_STATE_TABLE,
    },
    producer: {
      lingerMs: vars.PRODUCER_LINGER_MS,
      deadlineMs: vars.PRODUCER_DEADLINE_MS,
      maxBufferedRecords: 50_000,
    },
    consumer: {
      enabled: vars.CONSUMER_ENABLED,
      leaseFailoverMs: vars.LEASE_FAILOVER_MS,
      backoffMaxMs: vars.CONSUMER_BACKOFF_MAX_MS,
      stallUnreadyMs: vars.CONSUMER_STALL_UNREADY_MS,
      readsPerSecond: vars.CONSUMER_READS_PER_SECOND,
      idleReadIntervalMs: vars.CONSUMER_IDLE_READ_INTERVAL_MS,
    },
    simulator: {
      enabled: vars.SIMULATOR_ENABLED ?? (embedded && started.byNpmStart === true),
      cities: vars.SIMULATOR_CITIES,
      rate: vars.SIMULATOR_RATE,
    },
    speedLayer: { ttlHours: vars.SPEED_LAYER_TTL_HOURS },
    aggregation: {
      sizes: windowSizes(vars.AGGREGATION_WINDOWS),
      outOfOrdernessMs: vars.AGGREGATION_OUT_OF_ORDERNESS_MS,
      allowedLatenessMs: vars.AGGREGATION_ALLOWED_LATENESS_MS,
      idleMs: vars.AGGREGATION_IDLE_MS,
      flushMs: vars.AGGREGATION_FLUSH_MS,
      maxOpenWindows: vars.AGGREGATION_MAX_OPEN_WINDOWS,
    },
    apiKeys,
    readApiKeysRequired: vars.READ_API_KEYS_REQUIRED,
    cursorSecret: vars.CURSOR_SECRET,
    rateLimitPerMinute: vars.RATE_LIMIT_PER_MINUTE,
    trustProxy: vars.TRUST_PROXY,
    logLevel: vars.LOG_LEVEL as LogLevelName,
  };
}
