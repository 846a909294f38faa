import { KinesisClient } from '@aws-sdk/client-kinesis';
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoDbClient, createKinesisClient } from './aws-clients';
import fc from 'fast-check';
import {
  dynamoDbDirectCall,
  kinesisDirectCall,
  serviceError,
  withBytesAsBase64,
} from './direct-call';

/** A stub endpoint: records each request, answers what `answer` says. */
async function stub(
  answer: () => { status: number; headers?: Record<string, string>; body: string },
) {
  const requests: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      const a = answer();
      res.writeHead(a.status, { 'content-type': 'application/x-amz-json-1.1', ...a.headers });
      res.end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe('kinesisDirectCall', () => {
  let kinesis: KinesisClient;
  afterEach(() => kinesis?.destroy());

  const client = (endpoint: string) =>
    (kinesis = createKinesisClient({
      region: 'eu-west-1',
      kinesis: endpoint,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    }));

  it('sends the operation as signed JSON 1.1 for kinesis in the client region, and returns the JSON answer', async () => {
    const server = await stub(() => ({
      status: 200,
      body: '{"Records":[],"MillisBehindLatest":0}',
    }));
    try {
      const call = kinesisDirectCall<{ ShardIterator: string; Limit: number }, unknown>(
        'GetRecords',
        client(server.url),
      );
      await expect(call.send({ ShardIterator: 'it-1', Limit: 5 })).resolves.toEqual({
        Records: [],
        MillisBehindLatest: 0,
      });
      const [{ headers, body }] = server.requests;
      expect(JSON.parse(body)).toEqual({ ShardIterator: 'it-1', Limit: 5 });
      expect(headers['x-amz-target']).toBe('Kinesis_20131202.GetRecords');
      expect(headers['content-type']).toBe('application/x-amz-json-1.1');
      expect(headers['content-length']).toBe(String(Buffer.byteLength(body)));
      expect(headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
      const authorization = String(headers.authorization);
      expect(authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/kinesis\/aws4_request, /,
      );
      const signed = /SignedHeaders=([^,]+)/.exec(authorization)![1].split(';');
      expect(signed).toEqual(
        expect.arrayContaining(['content-type', 'host', 'x-amz-date', 'x-amz-target']),
      );
    } finally {
      await server.close();
    }
  });

  it('names a refused call as the SDK does: the type without its namespace, else the header, else UnknownError', async () => {
    const answers = [
      {
        status: 400,
        body: '{"__type":"com.amazonaws.kinesis.v20131202#ExpiredIteratorException","message":"Iterator expired"}',
      },
      {
        status: 400,
        headers: { 'x-amzn-errortype': 'ProvisionedThroughputExceededException:http://x' },
        body: '',
      },
      { status: 502, body: '<html>Bad Gateway</html>' },
    ];
    let next = 0;
    const server = await stub(() => answers[next++]);
    try {
      const call = kinesisDirectCall<object, unknown>('GetRecords', client(server.url));
      const failure = () =>
        call.send({}).then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(await failure()).toMatchObject({
        name: 'ExpiredIteratorException',
        message: 'Iterator expired',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      });
      expect(await failure()).toMatchObject({ name: 'ProvisionedThroughputExceededException' });
      expect(await failure()).toMatchObject({
        name: 'UnknownError',
        message: 'HTTP 502: <html>Bad Gateway</html>',
        $fault: 'server',
      });
    } finally {
      await server.close();
    }
  });

  it('reads an error message spelled Message too', () => {
    expect(serviceError(500, {}, '{"__type":"InternalFailure","Message":"boom"}')).toMatchObject({
      name: 'InternalFailure',
      message: 'boom',
      $fault: 'server',
    });
  });
});

describe('dynamoDbDirectCall', () => {
  let db: DynamoDBClient;
  afterEach(() => db?.destroy());

  it('sends the operation as signed JSON 1.0 for dynamodb in the client region, binary values as base64', async () => {
    const server = await stub(() => ({ status: 200, body: '{"UnprocessedItems":{}}' }));
    try {
      db = createDynamoDbClient({
        region: 'eu-west-1',
        dynamoDb: server.url,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      });
      const call = dynamoDbDirectCall<object, unknown>('BatchWriteItem', db);
      const item = { id: { S: 'a' }, raw: { B: Buffer.from([0, 1, 254, 255]) } };
      await expect(
        call.send({ RequestItems: { t: [{ PutRequest: { Item: item } }] } }),
      ).resolves.toEqual({ UnprocessedItems: {} });
      const [{ headers, body }] = server.requests;
      expect(JSON.parse(body)).toEqual({
        RequestItems: { t: [{ PutRequest: { Item: { id: { S: 'a' }, raw: { B: 'AAH+/w==' } } } }] },
      });
      expect(headers['x-amz-target']).toBe('DynamoDB_20120810.BatchWriteItem');
      expect(headers['content-type']).toBe('application/x-amz-json-1.0');
      expect(String(headers.authorization)).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\/aws4_request, /,
      );
    } finally {
      await server.close();
    }
  });

  it('ends a request when its abort signal fires, as the SDK does (AbortError)', async () => {
    const server = createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      db = createDynamoDbClient({
        region: 'eu-west-1',
        dynamoDb: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      });
      const call = dynamoDbDirectCall<object, unknown>('UpdateItem', db);
      const controller = new AbortController();
      const sent = call.send({}, { abortSignal: controller.signal });
      controller.abort();
      await expect(sent).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('withBytesAsBase64', () => {
  // What the SDK sends: every Uint8Array (a Buffer too) as base64, the rest as JSON.stringify writes it.
  function reference(this: Record<string, unknown>, key: string, value: unknown): unknown {
    const raw = this[key];
    return raw instanceof Uint8Array ? Buffer.from(raw).toString('base64') : value;
  }
  // The input's shape, bytes told apart from strings: to see that it was not changed.
  function marked(this: Record<string, unknown>, key: string, value: unknown): unknown {
    const raw = this[key];
    return raw instanceof Uint8Array ? { bytes: [...raw] } : value;
  }
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    // A view into a larger buffer: only its own bytes go.
    fc.uint8Array({ minLength: 2, maxLength: 40 }).map((a) => a.subarray(1)),
  );
  const value = fc.letrec((tie) => ({
    any: fc.oneof(
      { depthSize: 'small' },
      fc.string(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      bytes,
      fc.array(tie('any')),
      fc.dictionary(fc.string(), tie('any')),
    ),
  })).any;

  it('writes what the SDK writes, and leaves its input as it was', () => {
    fc.assert(
      fc.property(value, (input) => {
        const shape = JSON.stringify(input, marked);
        expect(JSON.stringify(withBytesAsBase64(input))).toBe(JSON.stringify(input, reference));
        expect(JSON.stringify(input, marked)).toBe(shape);
      }),
    );
  });

  it('copies nothing when there are no bytes', () => {
    const input = {
      RequestItems: { t: [{ PutRequest: { Item: { id: { S: 'a' }, n: { N: '1' } } } }] },
    };
    expect(withBytesAsBase64(input)).toBe(input);
  });

  it('sends a Buffer as base64, never as the array of its bytes', () => {
    const input = { Records: [{ Data: Buffer.from('hello'), PartitionKey: 'k' }] };
    expect(JSON.stringify(withBytesAsBase64(input))).toBe(
      '{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]}',
    );
  });
});
