import type { createFramework } from '../framework.ts';
export function appPages(_framework: ReturnType<typeof createFramework>): void {}
