import type { ApiClient } from '../api.ts';
import type { createFramework } from '../framework.ts';
export function operatorPages(
  _framework: ReturnType<typeof createFramework>,
  _api: ApiClient,
): void {}
