import { parseArgs } from 'node:util';
import { runLoad } from './load-generator';

/**
 * `npm run simulate -- --rate R --cities N --duration S --target URL [--batch B] [--seed X]
 * [--api-key K] [--duplicates P] [--out-of-order P] [--late P]`: realistic load from outside.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '100' },
      cities: { type: 'string', default: '20' },
      duration: { type: 'string', default: '30' },
      target: { type: 'string', default: 'http://localhost:3000' },
      batch: { type: 'string', default: '50' },
      seed: { type: 'string', default: '1' },
      'api-key': { type: 'string' },
      duplicates: { type: 'string', default: '0' },
      'out-of-order': { type: 'string', default: '0' },
      late: { type: 'string', default: '0' },
    },
  });
  const number = (name: keyof typeof values, min: number, max: number) => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}`);
    }
    return value;
  };
  const report = await runLoad({
    target: String(values.target).replace(/\/$/, ''),
    rate: number('rate', 1, 1_000_000),
    cities: number('cities', 1, 1000),
    durationS: number('duration', 1, 86_400),
    batch: number('batch', 1, 500),
    seed: number('seed', 0, 2 ** 31),
    apiKey: values['api-key'],
    duplicates: number('duplicates', 0, 1),
    outOfOrder: number('out-of-order', 0, 1),
    late: number('late', 0, 1),
    onProgress: (line) => process.stderr.write(`\r${line}   `),
  });
  process.stderr.write('\n');
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
