import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../support/http.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import {
  createResponseValidator,
  loadSpec,
  routerOperations,
  specOperations,
} from '../support/openapi.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t.close();
});

describe('openapi.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(
      loadSpec() as unknown as Parameters<Validator['validate']>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes exactly the routes the app registers under /v1, and nothing that does not exist', () => {
    const registered = routerOperations(t.app.router);
    const documented = specOperations(loadSpec());
    const undocumented = registered.filter(
      (op) => op.split(' ')[1]?.startsWith('/v1/') && !documented.includes(op),
    );
    const phantom = documented.filter((op) => !registered.includes(op));
    expect(undocumented, 'routes missing from openapi.yaml').toEqual([]);
    expect(phantom, 'openapi.yaml names routes that do not exist').toEqual([]);
  });

  it('is served at /v1/openapi.yaml', async () => {
    const response = await fetch(`${t.url}/v1/openapi.yaml`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(await response.text()).toMatch(/^openapi: 3\.1\.0$/m);
  });

  it('matches what /healthz, /readyz and error responses really return', async () => {
    const validate = createResponseValidator();
    const health = await fetch(`${t.url}/healthz`);
    expect(validate('GET', '/healthz', health.status, await json(health))).toBeNull();
    const ready = await fetch(`${t.url}/readyz`);
    expect(validate('GET', '/readyz', ready.status, await json(ready))).toBeNull();
    // The validator itself must reject a wrong body, or these checks prove nothing.
    expect(
      validate('GET', '/readyz', 200, { status: 'ready', checks: {}, extra: 1 }),
    ).not.toBeNull();
  });

  it('documents the metrics 401 in the shared error shape', async () => {
    const secured = await startTestApp({ env: { METRICS_TOKEN: 'm'.repeat(40) } });
    try {
      const response = await fetch(`${secured.url}/metrics`);
      expect(response.status).toBe(401);
      const validate = createResponseValidator();
      expect(validate('GET', '/metrics', 401, await json(response))).toBeNull();
    } finally {
      await secured.close();
    }
  });
});
