import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp, contextFromArgs } from './app';
import { actionsFor, PROVISIONING_COMMANDS, SERVICE_COMMANDS } from './permissions';

const SRC = path.join(__dirname, '..', 'src');
const EMBEDDED = path.join(SRC, 'infra', 'embedded');
const TOOLS = path.join(SRC, 'tools');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'testing' ? [] : sourceFiles(file);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [file] : [];
  });
}

/**
 * The SDK commands the given files construct, `new XxxCommand(`, and the operations they send
 * without the SDK's command classes, `kinesisDirectCall('Xxx'` and `dynamoDbDirectCall('Xxx'`
 * (named as the command would be).
 */
function commandsIn(files: string[]): Set<string> {
  const commands = new Set<string>();
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    for (const match of text.matchAll(/\bnew\s+(\w+Command)\s*\(/g)) commands.add(match[1]);
    for (const match of text.matchAll(/\b(?:kinesis|dynamoDb)DirectCall\(\s*'(\w+)'/g))
      commands.add(`${match[1]}Command`);
  }
  return commands;
}

const inside = (file: string, dir: string) => file.startsWith(dir + path.sep);
const serviceCommands = commandsIn(
  sourceFiles(SRC).filter((f) => !inside(f, EMBEDDED) && !inside(f, TOOLS)),
);
const provisioningCommands = commandsIn(sourceFiles(EMBEDDED));

type Json = Record<string, unknown>;
type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

let template: Template;
let outdir: string;

beforeAll(() => {
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'speed-layer-synth-'));
  // No account, no region, no network: and the image asset is only fingerprinted, never built.
  const { stack } = buildApp({ 'aws:cdk:disable-asset-staging': 'true' }, outdir);
  template = Template.fromStack(stack);
});

afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

const only = (type: string): Json => {
  const found = Object.values(template.findResources(type));
  expect(found).toHaveLength(1);
  return found[0] as Json;
};
const container = () =>
  (only('AWS::ECS::TaskDefinition').Properties as { ContainerDefinitions: Json[] })
    .ContainerDefinitions[0];

function taskRolePolicyStatements(): Statement[] {
  const roleArn = (only('AWS::ECS::TaskDefinition').Properties as Json).TaskRoleArn as {
    'Fn::GetAtt': [string, string];
  };
  const roleId = roleArn['Fn::GetAtt'][0];
  const role = template.findResources('AWS::IAM::Role')[roleId] as { Properties: Json };
  expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  expect(role.Properties.Policies).toBeUndefined();
  const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
    JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`),
  );
  expect(policies).toHaveLength(1);
  return policies[0].Properties.PolicyDocument.Statement as Statement[];
}

describe('the SDK commands and their IAM decisions', () => {
  it('finds the service calls in src/', () => {
    expect(serviceCommands).toContain('PutRecordsCommand');
    expect(serviceCommands).toContain('TransactWriteItemsCommand');
    expect(serviceCommands).toContain('GetRecordsCommand');
    expect(provisioningCommands).toContain('CreateTableCommand');
  });

  it('has a decision for every command the service constructs, and none it does not', () => {
    expect(() => actionsFor(serviceCommands, SERVICE_COMMANDS)).not.toThrow();
    expect(Object.keys(SERVICE_COMMANDS).sort()).toEqual([...serviceCommands].sort());
  });

  it('has a decision for every provisioning command, and none it does not', () => {
    expect(() => actionsFor(provisioningCommands, PROVISIONING_COMMANDS)).not.toThrow();
    expect(Object.keys(PROVISIONING_COMMANDS).sort()).toEqual([...provisioningCommands].sort());
  });

  it('fails on a command without a decision', () => {
    expect(() => actionsFor(['SubscribeToShardCommand'], SERVICE_COMMANDS)).toThrow(
      /SubscribeToShardCommand/,
    );
  });
});

describe('SpeedLayerStack', () => {
  it('creates the five tables with the keys the code uses, on demand and retained', () => {
    const keys = (hash: string, range?: string) => [
      { AttributeName: hash, KeyType: 'HASH' },
      ...(range ? [{ AttributeName: range, KeyType: 'RANGE' }] : []),
    ];
    const expected: [string, ReturnType<typeof keys>, boolean][] = [
      ['air-quality-realtime', keys('city_id', 'sk'), false],
      ['air-quality-aggregates', keys('city_id', 'window_key'), true],
      ['air-quality-dlq', keys('id'), true],
      ['air-quality-leases', keys('leaseKey'), true],
      ['air-quality-shard-state', keys('leaseKey'), true],
    ];
    template.resourceCountIs('AWS::DynamoDB::Table', 5);
    for (const [name, keySchema, pitr] of expected) {
      template.hasResource('AWS::DynamoDB::Table', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: Match.objectLike({
          TableName: name,
          KeySchema: keySchema,
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: pitr },
        }),
      });
    }
  });

  it('expires realtime items through ttl, and only there', () => {
    const ttl = Object.values(template.findResources('AWS::DynamoDB::Table'))
      .filter((t) => t.Properties.TimeToLiveSpecification)
      .map((t) => [t.Properties.TableName, t.Properties.TimeToLiveSpecification]);
    expect(ttl).toEqual([['air-quality-realtime', { AttributeName: 'ttl', Enabled: true }]]);
  });

  it('indexes the DLQ by kind and failed_at', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: 'air-quality-dlq',
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: 'kind', AttributeType: 'S' },
        { AttributeName: 'failed_at', AttributeType: 'S' },
      ]),
      GlobalSecondaryIndexes: [
        {
          IndexName: 'by_failed_at',
          KeySchema: [
            { AttributeName: 'kind', KeyType: 'HASH' },
            { AttributeName: 'failed_at', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
  });

  it('encrypts the stream with the AWS-managed key and retains it', () => {
    template.hasResource('AWS::Kinesis::Stream', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        Name: 'air-quality-stream',
        ShardCount: 4,
        StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      }),
    });
  });

  it('grants the task role exactly the actions of the SDK calls, on named resources only', () => {
    const statements = taskRolePolicyStatements();
    const granted = [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
    expect(granted).toEqual(actionsFor(serviceCommands, SERVICE_COMMANDS));
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of list(s.Action)) expect(action).not.toContain('*');
      for (const resource of list(s.Resource)) {
        expect(typeof resource === 'string' ? resource : '').not.toContain('*');
        expect(JSON.stringify(resource)).not.toContain('"*"');
      }
    }
  });

  it('scopes Kinesis to the stream and Query on the DLQ index to that index', () => {
    const statements = taskRolePolicyStatements();
    const streamId = Object.keys(template.findResources('AWS::Kinesis::Stream'))[0];
    const kinesis = statements.filter((s) => list(s.Action).some((a) => a.startsWith('kinesis:')));
    expect(kinesis).toHaveLength(1);
    expect(kinesis[0].Resource).toEqual({ 'Fn::GetAtt': [streamId, 'Arn'] });
    const dlqId = Object.entries(template.findResources('AWS::DynamoDB::Table')).find(
      ([, t]) => t.Properties.TableName === 'air-quality-dlq',
    )![0];
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: 'dynamodb:Query',
      Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [dlqId, 'Arn'] }, '/index/by_failed_at']] },
    });
  });

  it('creates the provisioning policy, unattached, with the provisioner actions', () => {
    const policy = only('AWS::IAM::ManagedPolicy').Properties as Json;
    expect(policy.Roles ?? policy.Users ?? policy.Groups).toBeUndefined();
    const statements = (policy.PolicyDocument as { Statement: Statement[] }).Statement;
    const actions = [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
    expect(actions).toEqual(actionsFor(provisioningCommands, PROVISIONING_COMMANDS));
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:UpdateTimeToLive']));
  });

  it('checks liveness on the target group and in the container, never readiness (an outage must not replace every task)', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/health/live',
    });
    const check = container().HealthCheck as { Command: string[] };
    expect(check.Command.join(' ')).toContain('/health/live');
  });

  it('stops the container after the 30 s shutdown deadline, and drains at least as long', () => {
    const stopTimeout = container().StopTimeout as number;
    expect(stopTimeout).toBeGreaterThan(30);
    expect(stopTimeout).toBeLessThanOrEqual(120);
    const targetGroup = only('AWS::ElasticLoadBalancingV2::TargetGroup').Properties as {
      TargetGroupAttributes: { Key: string; Value: string }[];
    };
    const delay = targetGroup.TargetGroupAttributes.find(
      (a) => a.Key === 'deregistration_delay.timeout_seconds',
    );
    expect(Number(delay?.Value)).toBeGreaterThanOrEqual(stopTimeout);
  });

  it('injects API_KEYS and CURSOR_SECRET from stack secrets, never as plain variables', () => {
    const secrets = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
    const apiKeys = secrets.find((id) => id.startsWith('ApiKeys'));
    const cursor = secrets.find((id) => id.startsWith('CursorSecret'));
    expect(container().Secrets).toEqual([
      { Name: 'API_KEYS', ValueFrom: { Ref: apiKeys } },
      { Name: 'CURSOR_SECRET', ValueFrom: { Ref: cursor } },
    ]);
    const env = container().Environment as { Name: string }[];
    expect(env.map((e) => e.Name)).not.toContain('API_KEYS');
    expect(env.map((e) => e.Name)).not.toContain('CURSOR_SECRET');
  });

  it('runs the service against AWS with the stack resources', () => {
    const env = Object.fromEntries(
      (container().Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
    );
    expect(env).toMatchObject({
      BACKEND: 'aws',
      PROVISION_RESOURCES: 'false',
      NODE_ENV: 'production',
      TRUST_PROXY: '1',
      AWS_REGION: { Ref: 'AWS::Region' },
    });
    for (const name of [
      'KINESIS_STREAM_NAME',
      'DYNAMODB_REALTIME_TABLE',
      'DYNAMODB_AGGREGATES_TABLE',
      'DYNAMODB_DLQ_TABLE',
      'DYNAMODB_LEASE_TABLE',
      'DYNAMODB_STATE_TABLE',
    ]) {
      expect(env[name]).toEqual({ Ref: expect.any(String) });
    }
  });
});

describe('contextFromArgs', () => {
  it('reads -c and --context pairs', () => {
    expect(contextFromArgs(['-c', 'shards=on-demand', '--context', 'certificateArn=a=b'])).toEqual({
      shards: 'on-demand',
      certificateArn: 'a=b',
    });
    expect(() => contextFromArgs(['-c', 'shards'])).toThrow();
  });
});
