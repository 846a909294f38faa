import { Readable } from 'node:stream';

/** A call as it leaves the app for the service: its operation and its JSON body, as sent. */
export interface WireCall {
  /** From the X-Amz-Target header: `BatchWriteItem`, `GetRecords`, … */
  operation: string;
  /** The request body as sent (DynamoDB items as attribute values: `{ S: 'x' }`, `{ N: '1' }`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  input: any;
}

/**
 * What the service answers instead: an error response, a failure of the request itself, or the
 * service's answer to another request (`forward`, the body as sent; the emulators do not check
 * signatures) rewritten by `rewrite`; or the request itself, held until `after` settles.
 */
export type WireFault =
  | { status: number; type: string; message: string; hangMs?: number }
  | { error: () => Error; hangMs?: number }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  | { forward: object; rewrite: (output: any) => object; hangMs?: number }
  | { after: Promise<unknown> };

/** A test's rule: the fault to answer `call` with, or nothing to let it through. */
export type WireRule = (call: WireCall) => WireFault | undefined;

type Request = { headers: Record<string, string>; body?: unknown };
type Response = { statusCode: number; headers: Record<string, string>; body: unknown };

interface Handler {
  handle(request: Request, options?: unknown): Promise<{ response: Response }>;
}

const rulesOf = new WeakMap<Handler, Set<WireRule>>();
const decoder = new TextDecoder();

function callOf(request: { headers: Record<string, string>; body?: unknown }): WireCall {
  const target = request.headers['x-amz-target'] ?? '';
  const body = request.body;
  // The SDK's body is a Uint8Array (a string when sent directly).
  const text =
    typeof body === 'string' ? body : body instanceof Uint8Array ? decoder.decode(body) : '';
  return { operation: target.split('.').pop()!, input: text ? JSON.parse(text) : {} };
}

async function text(stream: unknown): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

const jsonResponse = (statusCode: number, headers: Record<string, string>, body: object) => {
  const bytes = Buffer.from(JSON.stringify(body));
  return {
    response: {
      statusCode,
      headers: { ...headers, 'content-length': String(bytes.length) },
      body: Readable.from([bytes]),
    },
  };
};

async function answer(
  fault: WireFault,
  request: Request,
  send: Handler['handle'],
  options: unknown,
): Promise<{ response: Response }> {
  if ('after' in fault) {
    await fault.after;
    return send(request, options);
  }
  if (fault.hangMs) await new Promise((resolve) => setTimeout(resolve, fault.hangMs));
  if ('error' in fault) throw fault.error();
  if ('forward' in fault) {
    const body = JSON.stringify(fault.forward);
    const headers = { ...request.headers, 'content-length': String(Buffer.byteLength(body)) };
    const { response } = await send({ ...request, headers, body }, options);
    const answered: unknown = JSON.parse(await text(response.body));
    return jsonResponse(response.statusCode, response.headers, fault.rewrite(answered));
  }
  return jsonResponse(
    fault.status,
    { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'injected' },
    { __type: `com.amazonaws.injected#${fault.type}`, message: fault.message },
  );
}

/**
 * Puts `rule` in front of a client's HTTP handler, where every request of the client passes:
 * the SDK's commands (each of their tries) and the calls the app sends directly alike. A rule
 * that answers a fault stands for the service: its error response is parsed as the service's
 * would be, a thrown error is a failure of the request (a timeout, a reset), and a rewritten
 * answer is what the service would have said. Returns the function that takes the rule away.
 */
export function injectWireFaults(
  client: { config: { requestHandler: unknown } },
  rule: WireRule,
): () => void {
  const handler = client.config.requestHandler as Handler;
  let rules = rulesOf.get(handler);
  if (!rules) {
    const own = new Set<WireRule>();
    rules = own;
    rulesOf.set(handler, own);
    const send = handler.handle.bind(handler);
    handler.handle = (request, options) => {
      if (own.size === 0) return send(request, options);
      const call = callOf(request);
      for (const each of own) {
        const fault = each(call);
        if (fault) return answer(fault, request, send, options);
      }
      return send(request, options);
    };
  }
  rules.add(rule);
  return () => rules.delete(rule);
}

/** Every DynamoDB table a call names (in its body, as sent). */
export function tablesOf(input: {
  TableName?: string;
  RequestItems?: Record<string, unknown>;
  TransactItems?: Record<string, { TableName?: string } | undefined>[];
  Statements?: { Statement: string }[];
}): string[] {
  const names = input.TableName ? [input.TableName] : [];
  names.push(...Object.keys(input.RequestItems ?? {}));
  for (const item of input.TransactItems ?? [])
    for (const op of Object.values(item)) if (op?.TableName) names.push(op.TableName);
  // PartiQL names its table in the statement: UPDATE "table" …, INSERT INTO "table" …
  for (const { Statement } of input.Statements ?? []) {
    const table = /"([^"]+)"/.exec(Statement)?.[1];
    if (table) names.push(table);
  }
  return names;
}
