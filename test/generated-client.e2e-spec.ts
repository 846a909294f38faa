import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import ts from 'typescript';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';

const CLIENT = join(__dirname, 'client');
const GENERATED = join(CLIENT, 'generated');
const CLI = join(__dirname, '..', 'node_modules', 'openapi-typescript', 'bin', 'cli.js');

/**
 * The sample's functions, loaded at run time: a static import would pull it into the project's
 * type check, which runs without the generated types (they exist only once this test made them).
 */
interface Sample {
  send(baseUrl: string, measurements: unknown[]): Promise<string[]>;
  newestAqi(baseUrl: string, cityId: string): Promise<number | undefined>;
  allCities(baseUrl: string): Promise<string[]>;
  finalWindows(baseUrl: string, cityId: string, window: string): Promise<unknown[]>;
}
const sample = (): Sample => jest.requireActual<Sample>(join(CLIENT, 'sample.ts'));

/** Type errors of the sample program (and of `extra` files) against the generated types. */
function typeErrors(extra: Record<string, string> = {}): string[] {
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(GENERATED, name), text);
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(CLIENT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  )!;
  const files = [join(CLIENT, 'sample.ts'), ...Object.keys(extra).map((n) => join(GENERATED, n))];
  const program = ts.createProgram(files, parsed.options);
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

/** A client generated from /docs-json, as a user would generate it, compiles and works. */
describe('a client generated from /docs-json', () => {
  let t: TestApp;
  let url: string;

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1' }));
    await t.app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    const docs = await t.http.get('/docs-json').expect(200);
    mkdirSync(GENERATED, { recursive: true });
    writeFileSync(join(GENERATED, 'openapi.json'), JSON.stringify(docs.body));
    execFileSync(
      process.execPath,
      [CLI, join(GENERATED, 'openapi.json'), '-o', join(GENERATED, 'api.d.ts')],
      {
        stdio: 'pipe',
      },
    );
  });
  afterAll(() => t.close());

  it('type-checks the sample program strictly', () => {
    expect(typeErrors()).toEqual([]);
  });

  it('would catch a sample that disagrees with the document', () => {
    const errors = typeErrors({
      'wrong.ts': [
        "import type { CityLatest, ErrorBody } from '../sample';",
        'export const text: string = ({} as CityLatest).items[0].aqi_value;',
        "export const unknownCode = (e: ErrorBody) => e.code === 'teapot';",
        'export const unknownField = ({} as CityLatest).items[0].ttl;',
      ].join('\n'),
    });
    expect(errors).toEqual([
      expect.stringMatching(/number.*not assignable to type 'string'/),
      expect.stringMatching(/no overlap/),
      expect.stringMatching(/Property 'ttl' does not exist/),
    ]);
  });

  it('runs against the service: sends, reads the newest AQI, lists cities, reads windows', async () => {
    const { send, newestAqi, allCities, finalWindows } = sample();
    const ids = await send(url, [
      measurement({ city_id: 'client-a', city_name: 'A', pm25_value: 40 }),
      measurement({ city_id: 'client-b', city_name: 'B', pm25_value: 5, pm10_value: 10 }),
    ]);
    expect(ids).toHaveLength(2);
    const aqi = await eventually(() => newestAqi(url, 'client-a'), 'client-a readable');
    expect(Number.isInteger(aqi)).toBe(true);
    expect(await newestAqi(url, 'client-none')).toBeUndefined();
    await eventually(
      async () => ((await allCities(url)).length === 2 ? true : undefined),
      'both cities listed',
    );
    expect(await allCities(url)).toEqual([
      'client-a:Unhealthy for Sensitive Groups',
      'client-b:Good',
    ]);
    expect(Array.isArray(await finalWindows(url, 'client-a', '5m'))).toBe(true);
  });
});
