// The OpenAPI document as a test oracle: responses are validated against it with Ajv
// (JSON Schema 2020-12, the dialect of OpenAPI 3.1), and its paths are compared with the
// routes the app registers.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import type { Router } from '../../src/platform/http.ts';
import { OPENAPI_FILE } from '../../src/platform/openapi.ts';

interface Operation {
  responses: Record<string, { $ref?: string; content?: Record<string, { schema?: unknown }> }>;
}
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { responses?: Record<string, Operation['responses'][string]> };
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

export function loadSpec(): OpenApiDocument {
  return parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDocument;
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'options', 'head']);

/** `METHOD /path/{param}` for every operation in the document. */
export function specOperations(spec: OpenApiDocument): string[] {
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => HTTP_METHODS.has(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

/** `METHOD /path/{param}` for every route registered on the router (HEAD is implied by GET). */
export function routerOperations(router: Router): string[] {
  return router.stack.flatMap((layer) =>
    layer.methods
      .filter((m) => m !== 'HEAD')
      .map((m) => `${m} ${String(layer.path).replace(/:(\w+)/g, '{$1}')}`),
  );
}

export function createResponseValidator(spec: OpenApiDocument = loadSpec()) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(spec, 'openapi');
  return function validateResponse(
    method: string,
    path: string,
    status: number,
    body: unknown,
    contentType = 'application/json',
  ): ErrorObject[] | null {
    const operation = spec.paths[path]?.[method.toLowerCase()];
    if (operation === undefined) throw new Error(`${method} ${path} is not in openapi.yaml`);
    let response = operation.responses[String(status)] ?? operation.responses.default;
    if (response === undefined) throw new Error(`${method} ${path} does not document ${status}`);
    let pointer = `#/paths/${escape(path)}/${method.toLowerCase()}/responses/${status}`;
    if (response.$ref !== undefined) {
      const name = response.$ref.split('/').pop() as string;
      response = spec.components.responses?.[name];
      pointer = `#/components/responses/${escape(name)}`;
      if (response === undefined) throw new Error(`unresolved ${name}`);
    }
    if (response.content?.[contentType]?.schema === undefined) {
      throw new Error(`${method} ${path} ${status} documents no ${contentType} schema`);
    }
    const validate = ajv.compile({
      $ref: `openapi${pointer}/content/${escape(contentType)}/schema`,
    });
    return validate(body) ? null : (validate.errors ?? []);
  };
}

function escape(segment: string) {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
