import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ecsPatterns from 'aws-cdk-lib/aws-ecs-patterns';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import {
  Grant,
  PROVISIONING_COMMANDS,
  SERVICE_COMMANDS,
  statementsFor,
  Target,
} from './permissions';

export const DLQ_INDEX = 'by_failed_at';
export const TTL_ATTRIBUTE = 'ttl';
const PORT = 3000;
/** Above main.ts's 30 s shutdown deadline, so ECS never SIGKILLs a shutdown in progress. */
export const STOP_TIMEOUT = Duration.seconds(45);
const DEREGISTRATION_DELAY = Duration.seconds(60);

/** The build context of the repository's Dockerfile, kept small so hashing and staging are fast. */
const IMAGE_EXCLUDE = [
  'node_modules',
  'dist',
  'coverage',
  '.data',
  '.git',
  'test',
  'bench',
  'deploy',
  'cdk.out',
  '.ci',
  'docker-compose.yml',
  '*.md',
];

/** The directory of the Dockerfile, from deploy/ (tests) or from the compiled app in dist/deploy/. */
function repositoryRoot(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'Dockerfile'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Dockerfile above ${from}`);
  }
}

export interface SpeedLayerNames {
  stream: string;
  realtime: string;
  aggregates: string;
  dlq: string;
  leases: string;
  state: string;
}

/** The service's own defaults (src/config/app.config.ts), so its tools work unchanged. */
export const DEFAULT_NAMES: SpeedLayerNames = {
  stream: 'air-quality-stream',
  realtime: 'air-quality-realtime',
  aggregates: 'air-quality-aggregates',
  dlq: 'air-quality-dlq',
  leases: 'air-quality-leases',
  state: 'air-quality-shard-state',
};

export interface SpeedLayerStackProps extends StackProps {
  /** A number of shards (provisioned mode), or 'on-demand'. */
  shards: number | 'on-demand';
  desiredCount: number;
  names?: SpeedLayerNames;
  /** An ACM certificate in the stack's region: HTTPS on 443 and HTTP redirected to it. */
  certificateArn?: string;
}

export class SpeedLayerStack extends Stack {
  constructor(scope: Construct, id: string, props: SpeedLayerStackProps) {
    super(scope, id, props);
    const names = props.names ?? DEFAULT_NAMES;

    // Accepted measurements live only here until consumed: retained like the tables.
    const stream = new kinesis.Stream(this, 'Measurements', {
      streamName: names.stream,
      encryption: kinesis.StreamEncryption.MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
      ...(props.shards === 'on-demand'
        ? { streamMode: kinesis.StreamMode.ON_DEMAND }
        : { streamMode: kinesis.StreamMode.PROVISIONED, shardCount: props.shards }),
    });

    const table = (id: string, name: string, hash: string, range?: string, realtime = false) =>
      new dynamodb.Table(this, id, {
        tableName: name,
        partitionKey: { name: hash, type: dynamodb.AttributeType.STRING },
        ...(range ? { sortKey: { name: range, type: dynamodb.AttributeType.STRING } } : {}),
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        // Realtime items expire after SPEED_LAYER_TTL_HOURS (24 h) and the stream keeps as long a
        // history: a restore point would bring back little, at the price of the busiest table.
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: !realtime },
        removalPolicy: RemovalPolicy.RETAIN,
        ...(realtime ? { timeToLiveAttribute: TTL_ATTRIBUTE } : {}),
      });
    const realtime = table('RealtimeTable', names.realtime, 'city_id', 'sk', true);
    const aggregates = table('AggregatesTable', names.aggregates, 'city_id', 'window_key');
    const dlq = table('DlqTable', names.dlq, 'id');
    dlq.addGlobalSecondaryIndex({
      indexName: DLQ_INDEX,
      partitionKey: { name: 'kind', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'failed_at', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    const leases = table('LeaseTable', names.leases, 'leaseKey');
    // Window state apart from the leases: the lease cycle's Scan reads leases only.
    const state = table('StateTable', names.state, 'leaseKey');
    const tables = [realtime, aggregates, dlq, leases, state];

    const serviceArns: Record<Target, string[]> = {
      stream: [stream.streamArn],
      tables: tables.map((t) => t.tableArn),
      dlqIndex: [`${dlq.tableArn}/index/${DLQ_INDEX}`],
    };
    // By name, not by reference: the policy is for resources the service creates itself.
    const tableArn = (name: string) =>
      this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: name });
    const provisioningArns: Record<Target, string[]> = {
      stream: [
        this.formatArn({ service: 'kinesis', resource: 'stream', resourceName: names.stream }),
      ],
      tables: [names.realtime, names.aggregates, names.dlq, names.leases, names.state].map(
        tableArn,
      ),
      dlqIndex: [`${tableArn(names.dlq)}/index/${DLQ_INDEX}`],
    };
    const statements = (grants: Record<string, Grant>, arns: Record<Target, string[]>) =>
      statementsFor(grants).map(
        (s) =>
          new iam.PolicyStatement({
            actions: s.actions,
            resources: s.on.flatMap((target) => arns[target]),
          }),
      );

    const apiKeys = new secretsmanager.Secret(this, 'ApiKeys', {
      description: 'API_KEYS of the air-quality speed layer: comma-separated keys',
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
    });
    // One signing key for the page cursors of every task: a next_cursor from one task is honoured by
    // the task the load balancer sends the next page to.
    const cursorSecret = new secretsmanager.Secret(this, 'CursorSecret', {
      description: 'CURSOR_SECRET of the air-quality speed layer: signs page cursors',
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    statements(SERVICE_COMMANDS, serviceArns).forEach((s) => taskDefinition.addToTaskRolePolicy(s));

    taskDefinition.addContainer('app', {
      image: ecs.ContainerImage.fromAsset(repositoryRoot(), {
        exclude: IMAGE_EXCLUDE,
        // The task runs on X86_64, whatever machine builds the image.
        platform: Platform.LINUX_AMD64,
      }),
      portMappings: [{ containerPort: PORT }],
      environment: {
        NODE_ENV: 'production',
        BACKEND: 'aws',
        PORT: String(PORT),
        PROVISION_RESOURCES: 'false',
        AWS_REGION: this.region,
        KINESIS_STREAM_NAME: stream.streamName,
        DYNAMODB_REALTIME_TABLE: realtime.tableName,
        DYNAMODB_AGGREGATES_TABLE: aggregates.tableName,
        DYNAMODB_DLQ_TABLE: dlq.tableName,
        DYNAMODB_LEASE_TABLE: leases.tableName,
        DYNAMODB_STATE_TABLE: state.tableName,
        // One hop: the ALB. Client addresses (anonymous rate limits, logs) come from X-Forwarded-For.
        TRUST_PROXY: '1',
      },
      secrets: {
        API_KEYS: ecs.Secret.fromSecretsManager(apiKeys),
        CURSOR_SECRET: ecs.Secret.fromSecretsManager(cursorSecret),
      },
      healthCheck: {
        // The image is slim (no curl): Node's fetch, as the Dockerfile's HEALTHCHECK does.
        command: [
          'CMD',
          'node',
          '-e',
          `fetch('http://127.0.0.1:${PORT}/health/live',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
        ],
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        startPeriod: Duration.seconds(30),
        retries: 3,
      },
      stopTimeout: STOP_TIMEOUT,
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'speed-layer',
        logRetention: logs.RetentionDays.ONE_MONTH,
      }),
    });

    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      // DynamoDB traffic skips the NAT gateway (gateway endpoints are free).
      gatewayEndpoints: { DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB } },
    });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc });

    const web = new ecsPatterns.ApplicationLoadBalancedFargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: props.desiredCount,
      publicLoadBalancer: true,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(60),
      ...(props.certificateArn
        ? {
            certificate: acm.Certificate.fromCertificateArn(this, 'Cert', props.certificateArn),
            redirectHTTP: true,
          }
        : {}),
    });
    // Liveness, not readiness: ECS replaces a task that fails the load balancer's check, and a
    // DynamoDB or Kinesis outage (which readiness reports) must not make it replace every task.
    web.targetGroup.configureHealthCheck({
      path: '/health/live',
      healthyHttpCodes: '200',
      interval: Duration.seconds(15),
      timeout: Duration.seconds(5),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 3,
    });
    web.targetGroup.setAttribute(
      'deregistration_delay.timeout_seconds',
      String(DEREGISTRATION_DELAY.toSeconds()),
    );

    // Created, not attached: for deployments that let the service create its own resources.
    const provisioning = new iam.ManagedPolicy(this, 'ProvisioningPolicy', {
      description: 'What the speed layer needs with PROVISION_RESOURCES=true (not attached)',
      statements: statements(PROVISIONING_COMMANDS, provisioningArns),
    });

    new CfnOutput(this, 'ApiKeysSecretArn', { value: apiKeys.secretArn });
    new CfnOutput(this, 'ProvisioningPolicyArn', { value: provisioning.managedPolicyArn });
    new CfnOutput(this, 'StreamName', { value: stream.streamName });
  }
}
