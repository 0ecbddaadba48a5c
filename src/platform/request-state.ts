// What every request carries in ctx.state from the first middleware on (platform/http.ts).
import type { Logger } from './log.ts';

export interface RequestState {
  requestId: string;
  log: Logger;
  /** HTTP_BODY_LIMIT_BYTES: the default JSON body limit of every route. */
  bodyLimitBytes: number;
}
