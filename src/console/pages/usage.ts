import type { createFramework } from '../framework.ts';
export function usagePages(_framework: ReturnType<typeof createFramework>): void {}
