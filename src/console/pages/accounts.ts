import type { createFramework } from '../framework.ts';
export function accountPages(_framework: ReturnType<typeof createFramework>): void {}
