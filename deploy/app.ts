import { App } from 'aws-cdk-lib';
import { SpeedLayerStack, SpeedLayerStackProps } from './speed-layer-stack';

/** `-c key=value` / `--context key=value`, as the CDK CLI takes them, for `npm run synth -- …`. */
export function contextFromArgs(args: string[]): Record<string, string> {
  const context: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] !== '-c' && args[i] !== '--context') continue;
    const [key, ...value] = (args[i + 1] ?? '').split('=');
    if (!key || value.length === 0) throw new Error(`expected ${args[i]} key=value`);
    context[key] = value.join('=');
    i += 1;
  }
  return context;
}

function positiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`context ${name} must be a positive integer`);
  return n;
}

/** The stack's settings from context: shards (a count, or on-demand), desiredCount, certificateArn. */
export function propsFromContext(app: App): SpeedLayerStackProps {
  const shards = app.node.tryGetContext('shards') as unknown;
  const certificateArn = app.node.tryGetContext('certificateArn') as string | undefined;
  return {
    description: 'Air-quality speed layer: Kinesis, DynamoDB, ECS Fargate behind an ALB',
    shards: shards === 'on-demand' ? 'on-demand' : positiveInt('shards', shards, 4),
    desiredCount: positiveInt('desiredCount', app.node.tryGetContext('desiredCount'), 2),
    ...(certificateArn ? { certificateArn } : {}),
  };
}

export function buildApp(context: Record<string, string> = {}, outdir?: string) {
  // The CDK CLI passes CDK_OUTDIR when it runs the app itself.
  const app = new App({ context, outdir: outdir ?? process.env.CDK_OUTDIR ?? 'cdk.out' });
  const stack = new SpeedLayerStack(app, 'AirQualitySpeedLayer', propsFromContext(app));
  return { app, stack };
}

if (require.main === module) {
  // The image is built at deploy time straight from the repository: cdk.out holds no copy of it.
  const staging = { 'aws:cdk:disable-asset-staging': 'true' };
  const { app, stack } = buildApp({ ...staging, ...contextFromArgs(process.argv.slice(2)) });
  const assembly = app.synth();
  const template = assembly.getStackArtifact(stack.artifactId).templateFullPath;
  console.log(`CloudFormation template: ${template}`);
}
