import type { Cluster, Redis } from 'ioredis';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

type Limiters = typeof import('rate-limiter-flexible');
interface Window {
  limiter: RateLimiterAbstract;
  points: number;
  per: string;
}

/** Whether a request may be sent now, and if not, when a slot is free. */
export type SlotAnswer = { ok: true } | { ok: false; retryAfterMs: number; reason: string };

/**
 * Paces requests that a service limits per tenant and API (Defender's machine actions: each action type
 * is an API of its own, e.g. `isolate`), across replicas.
 */
export interface SubmissionPacer {
  /** Take one slot of `api`; when none is free, how long until one is (nothing is taken then). */
  take(api: string): Promise<SlotAnswer>;
  /** The service answered 429 for `api`: hold every replica's requests to it for `ms`. */
  pause(api: string, ms: number): Promise<void>;
}

/** Options of `DefenderPacer`. */
export interface DefenderPacerOptions {
  /** `DEFENDER_ACTIONS_PER_MINUTE` (Defender allows 100). */
  perMinute: number;
  /** `DEFENDER_ACTIONS_PER_HOUR` (Defender allows 1,500). */
  perHour: number;
  /** Whose limit: the Entra tenant (Defender counts per tenant). */
  tenant: string;
  /** The bot's Redis, shared by every replica; without it (local mode) the count is this process's. */
  redis?: Redis | Cluster;
  /** The bot's key prefix (REDIS_KEY_PREFIX). */
  keyPrefix?: string;
}

/** Wait after which a pacer that could not reach Redis is asked again. */
const UNREACHABLE_RETRY_MS = 5_000;

/**
 * Defender's limit on machine actions (100 a minute and 1,500 an hour per tenant and API), counted in Redis by
 * `rate-limiter-flexible` so every replica draws from the same slots (in memory in local mode). A slot
 * is taken from both windows or from neither. A 429 from Defender blocks the minute window for as long
 * as its Retry-After says, on every replica. The library is loaded on the first request paced, not at start.
 */
export class DefenderPacer implements SubmissionPacer {
  private loading: Promise<{ lib: Limiters; windows: Window[] }> | undefined;

  constructor(private readonly options: DefenderPacerOptions) {}

  private load(): Promise<{ lib: Limiters; windows: Window[] }> {
    const { options } = this;
    this.loading ??= import('rate-limiter-flexible').then((lib) => {
      const make = (points: number, duration: number, name: string): RateLimiterAbstract => {
        const keyPrefix = `${options.keyPrefix ?? 'mdr:'}rate:defender-actions:${name}`;
        return options.redis
          ? new lib.RateLimiterRedis({ storeClient: options.redis, keyPrefix, points, duration })
          : new lib.RateLimiterMemory({ keyPrefix, points, duration });
      };
      const windows = [
        { limiter: make(options.perMinute, 60, 'minute'), points: options.perMinute, per: 'a minute' },
        { limiter: make(options.perHour, 3_600, 'hour'), points: options.perHour, per: 'an hour' },
      ];
      return { lib, windows };
    });
    return this.loading;
  }

  async take(api: string): Promise<SlotAnswer> {
    const key = this.keyOf(api);
    const { lib, windows } = await this.load();
    const { RateLimiterRes } = lib;
    const taken: RateLimiterAbstract[] = [];
    for (const { limiter, points, per } of windows) {
      try {
        await limiter.consume(key);
        taken.push(limiter);
      } catch (error) {
        // A slot of one window is worth nothing without the other: give it back.
        await Promise.allSettled(taken.map((l) => l.reward(key)));
        if (error instanceof RateLimiterRes) {
          return {
            ok: false,
            retryAfterMs: Math.max(1, error.msBeforeNext),
            reason: `Defender allows ${points} ${api} requests ${per} per tenant`,
          };
        }
        // Without the shared count, sending could break the limit for every replica: wait instead.
        return {
          ok: false,
          retryAfterMs: UNREACHABLE_RETRY_MS,
          reason: `the Defender rate count could not be read (${error instanceof Error ? error.message : String(error)})`,
        };
      }
    }
    return { ok: true };
  }

  async pause(api: string, ms: number): Promise<void> {
    if (ms <= 0) return;
    const minute = (await this.load()).windows[0]?.limiter;
    if (!minute) return;
    await minute.block(this.keyOf(api), Math.ceil(ms / 1000)).catch(() => undefined);
  }

  private keyOf(api: string): string {
    return `${this.options.tenant}:${api}`;
  }
}
