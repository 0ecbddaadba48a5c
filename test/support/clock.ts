// Clocks for tests. The app reads time only through the Clock it is given (src/platform/clock.ts),
// so a test sets the date instead of hoping the wall clock is on a convenient day, and moves time
// forward instead of sleeping through a grace window or an expiry.
//
// TOLLHOUSE_TEST_NOW (an ISO instant) sets the date every test clock starts at (unless a test
// names one): `.ci/run` runs the date-sensitive files again at the edges of months and years.
import type { Clock } from '../../src/platform/clock.ts';

export interface TestClock extends Clock {
  /** Moves the clock forward (or back, with a negative value) by `ms`. */
  advance(ms: number): void;
  /** Puts the clock at `at`. */
  set(at: Date | string): void;
}

/** The instant TOLLHOUSE_TEST_NOW names, or null when it is unset. */
export function configuredTestNow(): Date | null {
  const value = process.env.TOLLHOUSE_TEST_NOW;
  if (value === undefined || value === '') return null;
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw new Error(`TOLLHOUSE_TEST_NOW=${value} is not a date`);
  return at;
}

/**
 * A clock that stands still at `at` (default: TOLLHOUSE_TEST_NOW, else the moment it is made)
 * until the test moves it. For tests that depend on the date: every read in the test and in the
 * app agrees, even at 23:59:59 on 31 December.
 */
export function fixedClock(at?: Date | string): TestClock {
  let ms = new Date(at ?? configuredTestNow() ?? new Date()).getTime();
  const clock = (() => new Date(ms)) as TestClock;
  clock.advance = (delta) => {
    ms += delta;
  };
  clock.set = (to) => {
    ms = new Date(to).getTime();
  };
  return clock;
}

/**
 * The wall clock plus whatever the test has moved it by: time passes as usual (payments age,
 * caches expire), and a test can still jump past a grace window or an expiry at once. With
 * TOLLHOUSE_TEST_NOW it starts at that instant instead of now.
 */
export function movingClock(): TestClock {
  const start = configuredTestNow();
  let offset = start === null ? 0 : start.getTime() - Date.now();
  const clock = (() => new Date(Date.now() + offset)) as TestClock;
  clock.advance = (delta) => {
    offset += delta;
  };
  clock.set = (to) => {
    offset = new Date(to).getTime() - Date.now();
  };
  return clock;
}

/** The first instant of the UTC month `back` months before the one `at` is in. */
export function monthStartUtc(at: Date, back = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() - back, 1));
}

/** `YYYY-MM` of the UTC month `back` months before the one `at` is in. */
export function monthOfUtc(at: Date, back = 0): string {
  return monthStartUtc(at, back).toISOString().slice(0, 7);
}
