import Ajv, { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { NextFunction, Request, Response } from 'express';

/**
 * Checks every response the end-to-end tests receive against the OpenAPI document the service
 * that sent it publishes at /docs-json: the route and status must be documented, the content type
 * too, and a JSON body must match its schema, with no field the schema does not name and the
 * fields in the documented order. Responses are recorded in the app (in-process services) or by
 * a wrapper of `fetch` (child-process services); each test file fails on any violation.
 */

export type OpenApiDocument = {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
};
type Operation = {
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
};

export interface RecordedResponse {
  method: string;
  path: string;
  status: number;
  contentType: string;
  body: Buffer | undefined;
}

/** Routes served outside the API's controllers (Swagger UI and its document). */
const UNAUDITED = [/^\/docs(-json|\/.*)?$/];
/** Bodies that are not read whole: a stream never ends. */
const STREAMED = new Set(['text/event-stream']);

/** Every object schema closed (no undocumented field) and its property order noted. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const copy = Object.fromEntries(
    Object.entries(schema).map(([key, value]) => [
      key,
      key === 'example' || key === 'examples' ? value : strict(value),
    ]),
  ) as Record<string, unknown>;
  if (copy.properties && typeof copy.properties === 'object') {
    copy.additionalProperties ??= false;
    copy['x-property-order'] = Object.keys(copy.properties);
  }
  return copy;
}

/** True when the keys of `data` appear in the order of `order` (documented fields may be absent). */
function inOrder(order: string[], data: unknown): boolean {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return true;
  let position = -1;
  for (const key of Object.keys(data)) {
    const index = order.indexOf(key);
    if (index < 0) continue; // reported as an undocumented field
    if (index < position) return false;
    position = index;
  }
  return true;
}

function routeOf(document: OpenApiDocument, path: string): string | undefined {
  const matches = Object.keys(document.paths).filter((template) => {
    const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
    return new RegExp(`^${pattern}$`).test(path);
  });
  // A literal segment wins over a parameter.
  return matches.sort((a, b) => a.split('{').length - b.split('{').length)[0];
}

export class ResponseAudit {
  readonly violations: string[] = [];
  checked = 0;
  private readonly pending: Promise<void>[] = [];
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly ajv: Ajv;

  constructor() {
    this.ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addKeyword({
      keyword: 'x-property-order',
      validate: (order: string[], data: unknown) => inOrder(order, data),
      errors: false,
    });
  }

  /**
   * Checks `response` against `document` (the sender's /docs-json) once both are known; a body
   * that could not be read whole (the client went away) is not a response to check.
   */
  record(
    document: Promise<OpenApiDocument>,
    response: Promise<RecordedResponse | undefined>,
  ): void {
    this.pending.push(
      response.then(
        async (r) => {
          if (!r || UNAUDITED.some((pattern) => pattern.test(r.path))) return;
          try {
            this.check(await document, r);
          } catch (error) {
            this.violations.push(`${this.describe(r)}: ${(error as Error).message}`);
          }
        },
        () => undefined,
      ),
    );
  }

  /** Waits for every check in flight. */
  async settle(): Promise<void> {
    while (this.pending.length > 0) await Promise.all(this.pending.splice(0));
  }

  private describe(r: RecordedResponse): string {
    return `${r.method} ${r.path} → ${r.status}`;
  }

  private check(document: OpenApiDocument, response: RecordedResponse): void {
    this.checked += 1;
    const what = this.describe(response);
    // Express routes are not strict: /dlq/ is /dlq.
    const route = routeOf(document, response.path.replace(/(.)\/$/, '$1'));
    const operation = route ? document.paths[route][response.method.toLowerCase()] : undefined;
    let documented: Operation['responses'][string] | undefined;
    if (operation) {
      documented = operation.responses[String(response.status)] ?? operation.responses.default;
      if (!documented) {
        this.violations.push(`${what}: status not documented for ${route}`);
        return;
      }
    } else if (response.status === 404 || response.status === 405) {
      // No such route: the shared error body, like every other error.
      documented = {
        content: {
          'application/json': { schema: { $ref: '#/components/schemas/ErrorResponseDto' } },
        },
      };
    } else {
      this.violations.push(`${what}: route not documented`);
      return;
    }
    const empty = response.body !== undefined && response.body.length === 0;
    if (!documented.content) {
      if (!empty) this.violations.push(`${what}: a body where none is documented`);
      return;
    }
    const media = documented.content[response.contentType];
    if (!media) {
      this.violations.push(
        `${what}: content type ${response.contentType || '(none)'} not documented (${Object.keys(documented.content).join(', ')})`,
      );
      return;
    }
    if (response.contentType !== 'application/json' || response.body === undefined) return;
    let body: unknown;
    try {
      body = JSON.parse(response.body.toString('utf8'));
    } catch {
      this.violations.push(`${what}: body is not JSON`);
      return;
    }
    const validate = this.validator(
      document,
      `${route ?? '*'} ${response.method} ${response.status}`,
      media.schema ?? {},
    );
    if (!validate(body)) {
      const errors = (validate.errors ?? [])
        .map(
          (e) =>
            `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : ''}`,
        )
        .join('; ');
      this.violations.push(`${what}: ${errors} in ${JSON.stringify(body).slice(0, 300)}`);
    }
  }

  private validator(document: OpenApiDocument, key: string, schema: object): ValidateFunction {
    const cached = this.validators.get(key);
    if (cached && (cached as { document?: OpenApiDocument }).document === document) return cached;
    const validate = this.ajv.compile(
      strict({ ...schema, components: document.components ?? {} }) as object,
    );
    Object.assign(validate, { document });
    this.validators.set(key, validate);
    return validate;
  }
}

/** The audit of the current test file (one per Jest module registry). */
export const audit = new ResponseAudit();

const mediaType = (header: unknown) =>
  String(Array.isArray(header) ? header[0] : (header ?? ''))
    .split(';')[0]
    .trim()
    .toLowerCase();

/** Express middleware recording what an in-process app answers; mount it before anything else. */
export function recordResponses(document: () => Promise<OpenApiDocument>) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const chunks: Buffer[] = [];
    let streamed = false;
    const capture = (chunk: unknown, encoding?: unknown) => {
      if (streamed || chunk === undefined || chunk === null || typeof chunk === 'function') return;
      if (STREAMED.has(mediaType(res.getHeader('content-type')))) {
        streamed = true;
        return;
      }
      chunks.push(
        Buffer.isBuffer(chunk)
          ? chunk
          : Buffer.from(
              chunk as string,
              typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8',
            ),
      );
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => Response;
    res.write = ((...args: unknown[]) => {
      capture(args[0], args[1]);
      return write(...args);
    }) as Response['write'];
    res.end = ((...args: unknown[]) => {
      capture(args[0], args[1]);
      return end(...args);
    }) as Response['end'];
    res.on('finish', () => {
      audit.record(
        document(),
        Promise.resolve({
          method: req.method,
          path: req.originalUrl.split('?')[0],
          status: res.statusCode,
          contentType: mediaType(res.getHeader('content-type')),
          body: streamed || req.method === 'HEAD' ? undefined : Buffer.concat(chunks),
        }),
      );
    });
    next();
  };
}

const documents = new Map<string, Promise<OpenApiDocument>>();
const plainFetch = globalThis.fetch;

/**
 * Audits the responses of the child-process service at `origin`: call it as soon as it listens,
 * so that its OpenAPI document is known even if the test freezes or kills it later.
 */
export async function auditService(origin: string): Promise<void> {
  const document = plainFetch(`${origin}/docs-json`, { signal: AbortSignal.timeout(10_000) }).then(
    (r) => r.json() as Promise<OpenApiDocument>,
  );
  documents.set(origin, document);
  await document;
}

/** Wraps `fetch` so that the responses of child-process services (see auditService) are audited too. */
export function auditFetch(): void {
  globalThis.fetch = async (input, init) => {
    const response = await plainFetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    const document = documents.get(url.origin);
    if (!document) return response; // not a service (an emulator), or one audited in-process
    const method = (
      init?.method ?? (input instanceof Request ? input.method : 'GET')
    ).toUpperCase();
    const contentType = mediaType(response.headers.get('content-type'));
    const streamed = STREAMED.has(contentType) || method === 'HEAD';
    const body = streamed
      ? Promise.resolve(undefined)
      : response
          .clone()
          .arrayBuffer()
          .then((bytes) => Buffer.from(bytes));
    audit.record(
      document,
      body.then((bytes) => ({
        method,
        path: url.pathname,
        status: response.status,
        contentType,
        body: bytes,
      })),
    );
    return response;
  };
}
