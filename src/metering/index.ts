// Metering: every billable event recorded exactly once, rolled up hourly, and queryable.
import type { Authenticator } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../platform/metrics.ts';
import { createRecorder } from './recorder.ts';
import type { Recorder } from './recorder.ts';
import { meteringRoutes } from './routes.ts';
import { createMeteringService } from './service.ts';
import type { MeteringService } from './service.ts';
import { createUsageReads } from './reads.ts';
import type { UsageReads } from './reads.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export type { UsageEventsTable, UsageRollupsTable } from './table.ts';
export type { RecordOutcome, Unit, UsageEvent } from './model.ts';
export { UNITS } from './model.ts';
export type { MeteringService, Recorder, UsageReads };
export type { BillableUsage, PayerSpend } from './reads.ts';
export { createUsageReads } from './reads.ts';
export type { StoredUsageEvent } from './model.ts';
export { GROUP_BY } from './queries.ts';
export type { GroupBy, UsageRow } from './queries.ts';
export { USAGE_EVENT_TYPE, cloudEvent, parseCloudEventFast, toUsageEventView } from './schemas.ts';
export { meteringCommands } from './cli.ts';
export type { MeteringCliDeps } from './cli.ts';
export { createRecorder } from './recorder.ts';
export { createMeteringService } from './service.ts';

export interface MeteringDeps {
  database: DatabaseHandle;
  log: Logger;
  authenticator: Authenticator;
  /** The account that owns an app (identity's), to check app ids in ingested events. */
  appOwner: (appId: string) => Promise<{ accountId: string } | null>;
  clock?: Clock;
  metrics?: Metrics;
  recorder?: {
    batchSize?: number;
    flushIntervalMs?: number;
    maxBuffered?: number;
    writers?: number;
  };
}

export interface Metering extends Capability {
  service: MeteringService;
  /** The buffered writer for the front door; `recordNow` for paths that must be durable. */
  recorder: Recorder;
  /** What billing reads of usage (spend, month close, exports). */
  reads: UsageReads;
  close(): Promise<void>;
}

export function createMetering(deps: MeteringDeps): Metering {
  const service = createMeteringService({ database: deps.database, log: deps.log });
  const recorder = createRecorder({
    write: (events) => service.record(events),
    log: deps.log.child({ component: 'usage-recorder' }),
    ...deps.recorder,
  });
  if (deps.metrics !== undefined) {
    const registers = [deps.metrics.registry];
    new Gauge({
      name: 'tollhouse_usage_recorder_buffered_events',
      help: 'Usage events accepted and buffered but not yet written to PostgreSQL (the recorder lag)',
      registers,
      collect() {
        this.set(recorder.stats().buffered);
      },
    });
    let counted = 0;
    new Counter({
      name: 'tollhouse_usage_recorder_failed_writes_total',
      help: 'Batch writes of the usage recorder that failed (and are retried)',
      registers,
      collect() {
        const failed = recorder.stats().failedWrites;
        if (failed > counted) this.inc(failed - counted);
        counted = failed;
      },
    });
  }
  return {
    name: 'metering',
    service,
    recorder,
    reads: createUsageReads(deps.database.db),
    routes(router) {
      meteringRoutes(router, {
        service,
        authenticator: deps.authenticator,
        appOwner: deps.appOwner,
        clock: deps.clock ?? systemClock,
      });
    },
    // LISTEN for partitions other processes create or drop (a one-shot command needs none).
    start: () => service.start(),
    async close() {
      await recorder.close();
      await service.stop();
    },
  };
}
