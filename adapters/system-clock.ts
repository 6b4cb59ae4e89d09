import type { Clock } from '../core/ports.js';

/** The real clock. Tests pass their own `Clock`. */
export const systemClock: Clock = { now: () => new Date() };
