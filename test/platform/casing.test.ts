// One casing for tollhouse's own API: every property, query and path parameter name in
// openapi.yaml is snake_case (house style rule 6), as OAuth, OIDC and CloudEvents' data are.
// Only go-livepeer's remote-signer protocol keeps its own names: go-livepeer sends and reads
// them (they are its Go structs' field names), so renaming them would break the gateway.
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../support/openapi.ts';

const SNAKE_CASE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

/**
 * Paths whose names are another program's wire format, not tollhouse's API. Each entry says
 * whose and why; anything else that is not snake_case fails the test.
 */
const FOREIGN_WIRE_PATHS: Record<string, string> = {
  '/sign-orchestrator-info':
    "go-livepeer's remote-signer protocol (server/remote_signer.go): its client reads these names",
  '/generate-live-payment':
    "go-livepeer's RemotePaymentResponse (`segCreds`, `state.State`, `state.Sig`), read by go-livepeer",
  '/discover-orchestrators':
    "go-livepeer's remote-signer protocol (server/remote_signer.go): its client reads these names",
};

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'options', 'head']);

function pointer(segments: ReadonlyArray<string | number>): string {
  return `#/${segments.map((s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Every name a client writes or reads that is not snake_case, as `<JSON pointer>: <name>`:
 * schema property names (and the names in `required`), keys of example and default objects
 * (what a reader copies), query and path parameter names, and `{templates}` in paths. Enum
 * values are data, not names (`usage:read`), and are not checked.
 */
function casingOffenders(
  spec: unknown,
  foreignPaths: Record<string, string> = FOREIGN_WIRE_PATHS,
): string[] {
  const offenders: string[] = [];
  const report = (at: ReadonlyArray<string | number>, name: string) => {
    if (!SNAKE_CASE.test(name)) offenders.push(`${pointer(at)}: ${name}`);
  };
  /** Keys of a literal JSON value (an example), all the way down. */
  const walkValue = (value: unknown, at: Array<string | number>) => {
    if (Array.isArray(value)) value.forEach((v, i) => walkValue(v, [...at, i]));
    else if (isObject(value)) {
      for (const [key, v] of Object.entries(value)) {
        report([...at, key], key);
        walkValue(v, [...at, key]);
      }
    }
  };
  const walk = (node: unknown, at: Array<string | number>) => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => walk(n, [...at, i]));
      return;
    }
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const here = [...at, key];
      if (key === 'enum' || key === 'const') continue;
      if (key === 'properties' && isObject(value)) {
        for (const [name, schema] of Object.entries(value)) {
          report([...here, name], name);
          walk(schema, [...here, name]);
        }
      } else if (key === 'required' && Array.isArray(value)) {
        value.forEach((name, i) => {
          if (typeof name === 'string') report([...here, i], name);
        });
      } else if (key === 'example' || (key === 'default' && at.at(-1) !== 'responses')) {
        // (`responses.default` is the response for any other status, not a value.)
        walkValue(value, here);
      } else if (key === 'examples') {
        // Schema `examples` is a list of values; media-type `examples` maps names to
        // Example objects whose `value` is the payload.
        if (Array.isArray(value)) walkValue(value, here);
        else if (isObject(value)) {
          for (const [name, example] of Object.entries(value)) {
            if (isObject(example) && 'value' in example) {
              walkValue(example.value, [...here, name, 'value']);
            }
          }
        }
      } else if (key === 'parameters' && Array.isArray(value)) {
        value.forEach((parameter, i) => {
          if (
            isObject(parameter) &&
            (parameter.in === 'query' || parameter.in === 'path') &&
            typeof parameter.name === 'string'
          ) {
            report([...here, i, 'name'], parameter.name);
          }
          walk(parameter, [...here, i]);
        });
      } else {
        walk(value, here);
      }
    }
  };
  const document = isObject(spec) ? spec : {};
  const paths = isObject(document.paths) ? document.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (Object.hasOwn(foreignPaths, path)) continue;
    for (const match of path.matchAll(/\{([^}]*)\}/g)) report(['paths', path], match[1]!);
    walk(item, ['paths', path]);
  }
  for (const [key, value] of Object.entries(document)) {
    if (key !== 'paths') walk(value, [key]);
  }
  return offenders;
}

describe('casing of the public API (openapi.yaml)', () => {
  it('names every property and query or path parameter in snake_case', () => {
    expect(casingOffenders(loadSpec())).toEqual([]);
  });

  it('allows foreign names only on paths that exist, each with its reason', () => {
    const spec = loadSpec();
    for (const [path, reason] of Object.entries(FOREIGN_WIRE_PATHS)) {
      expect(Object.keys(spec.paths), path).toContain(path);
      const operations = Object.keys(spec.paths[path] ?? {}).filter((m) => HTTP_METHODS.has(m));
      expect(operations.length, path).toBeGreaterThan(0);
      expect(reason.length, path).toBeGreaterThan(20);
    }
    // The exception is used: without it, go-livepeer's own names would be reported.
    expect(casingOffenders(spec, {})).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^#\/paths\/~1generate-live-payment\/.*\/segCreds: segCreds$/),
      ]),
    );
  });

  it('reports each offender with its JSON pointer, wherever it hides', () => {
    const spec = {
      openapi: '3.1.0',
      paths: {
        '/v1/things/{thingId}': {
          parameters: [{ name: 'thingId', in: 'path' }],
          get: {
            parameters: [
              { name: 'pageSize', in: 'query' },
              { name: 'X-Request-Id', in: 'header' },
            ],
            responses: {
              '200': {
                content: {
                  'application/json': {
                    schema: {
                      type: 'object',
                      required: ['createdAt'],
                      properties: {
                        created_at: { type: 'string' },
                        nested: { type: 'object', properties: { ownerID: { type: 'string' } } },
                        list: { type: 'array', items: { properties: { Item: {} } } },
                        scope: { enum: ['usage:read', 'camelValue'] },
                      },
                    },
                    examples: { one: { value: { ok_key: { badKey: 1 } } } },
                  },
                },
              },
              default: { $ref: '#/components/responses/Error' },
            },
          },
        },
      },
      components: {
        schemas: {
          Thing: {
            properties: { 'snake-ish': {}, _private: {}, a__b: {}, fine_2: {} },
            default: { Mixed_Case: true },
            examples: [{ withCaps: 1 }],
          },
        },
      },
    };
    expect(casingOffenders(spec, {})).toEqual([
      '#/paths/~1v1~1things~1{thingId}: thingId',
      '#/paths/~1v1~1things~1{thingId}/parameters/0/name: thingId',
      '#/paths/~1v1~1things~1{thingId}/get/parameters/0/name: pageSize',
      '#/paths/~1v1~1things~1{thingId}/get/responses/200/content/application~1json/schema/required/0: createdAt',
      '#/paths/~1v1~1things~1{thingId}/get/responses/200/content/application~1json/schema/properties/nested/properties/ownerID: ownerID',
      '#/paths/~1v1~1things~1{thingId}/get/responses/200/content/application~1json/schema/properties/list/items/properties/Item: Item',
      '#/paths/~1v1~1things~1{thingId}/get/responses/200/content/application~1json/examples/one/value/ok_key/badKey: badKey',
      '#/components/schemas/Thing/properties/snake-ish: snake-ish',
      '#/components/schemas/Thing/properties/_private: _private',
      '#/components/schemas/Thing/properties/a__b: a__b',
      '#/components/schemas/Thing/default/Mixed_Case: Mixed_Case',
      '#/components/schemas/Thing/examples/0/withCaps: withCaps',
    ]);
    // A foreign path is skipped whole; the same names elsewhere are still reported.
    expect(casingOffenders(spec, { '/v1/things/{thingId}': 'test' })).toHaveLength(5);
  });
});
