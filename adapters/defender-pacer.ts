import { Cluster, type Redis } from 'ioredis';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

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

/** A fixed window of the limit: at most `points` requests per `seconds`. */
interface Window {
  name: 'minute' | 'hour';
  points: number;
  seconds: number;
  per: string;
}

/** The first window with no slot left, and how long until it has one; undefined when a slot was taken. */
type Refusal = { window: Window; retryAfterMs: number } | undefined;

/** Where the windows' counts live: Redis (every replica) or this process. */
interface WindowCounts {
  /** Takes a slot of every window or of none. */
  take(key: string): Promise<Refusal>;
  /** Holds the minute window full for `ms`. */
  block(key: string, ms: number): Promise<void>;
}

// KEYS: the count of each window (a key `rate-limiter-flexible` wrote too: an integer that expires with
// its window). ARGV: each window's points and length in ms. Takes a slot of every window or, when one is
// full, of none: {0, 0}, or {index of the full window, ms until it has a slot}. A count left without an
// expiry (never written so by this script) gets its window's, so it cannot hold the slots for ever.
const TAKE_SCRIPT = `
for i, key in ipairs(KEYS) do
  local ms = tonumber(ARGV[2 * i])
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ms) end
  if n > tonumber(ARGV[2 * i - 1]) then
    for j = 1, i do redis.call('DECR', KEYS[j]) end
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ms)
      ttl = ms
    end
    return {i, ttl}
  end
end
return {0, 0}
`;

/**
 * The windows' counts in Redis, under the keys `rate-limiter-flexible` used before (so replicas of the
 * earlier version count in the same slots). On one server both windows are taken by one script (an
 * INCR each: 3 commands a slot, where the library's two limiters cost 8); on Redis Cluster the two keys
 * live in different slots, so each window is a script call of its own and a slot of the minute window
 * is given back when the hour window is full.
 */
class RedisWindowCounts implements WindowCounts {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly windows: Window[],
    private readonly keyPrefix: string,
  ) {
    // A fixed key count keeps ioredis routing by the first key (its auto-pipelining on a cluster).
    redis.defineCommand('mdrPacerTakeAll', { numberOfKeys: windows.length, lua: TAKE_SCRIPT });
    redis.defineCommand('mdrPacerTakeOne', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  async take(key: string): Promise<Refusal> {
    const keys = this.windows.map((w) => this.keyOf(w, key));
    const args = this.windows.flatMap((w) => [w.points, w.seconds * 1_000]);
    if (!(this.redis instanceof Cluster)) {
      const [full, ms] = await this.script(keys, args);
      const window = this.windows[full - 1];
      return window ? { window, retryAfterMs: ms } : undefined;
    }
    for (const [i, window] of this.windows.entries()) {
      const [full, ms] = await this.script([keys[i] as string], args.slice(2 * i, 2 * i + 2));
      if (full === 0) continue;
      await Promise.all(keys.slice(0, i).map((k) => this.redis.decr(k)));
      return { window, retryAfterMs: ms };
    }
    return undefined;
  }

  async block(key: string, ms: number): Promise<void> {
    const minute = this.windows[0] as Window;
    // Full until then (as the library's `block` did): a take finds it over its points.
    await this.redis.set(this.keyOf(minute, key), minute.points + 1, 'PX', ms);
  }

  private script(keys: string[], args: number[]): Promise<[number, number]> {
    const redis = this.redis as unknown as Record<
      'mdrPacerTakeAll' | 'mdrPacerTakeOne',
      (...keysAndArgs: (string | number)[]) => Promise<[number, number]>
    >;
    return keys.length === 1
      ? redis.mdrPacerTakeOne(...keys, ...args)
      : redis.mdrPacerTakeAll(...keys, ...args);
  }

  private keyOf(window: Window, key: string): string {
    return `${this.keyPrefix}rate:defender-actions:${window.name}:${key}`;
  }
}

/**
 * The windows' counts in this process (local mode), by `rate-limiter-flexible`'s memory limiter, loaded
 * on the first request paced, not at start.
 */
class MemoryWindowCounts implements WindowCounts {
  private loading: Promise<{ window: Window; limiter: RateLimiterAbstract }[]> | undefined;
  private loadLib: Promise<typeof import('rate-limiter-flexible')> | undefined;

  constructor(private readonly windows: Window[]) {}

  async take(key: string): Promise<Refusal> {
    const limiters = await this.limiters();
    const { RateLimiterRes } = await this.lib();
    const taken: RateLimiterAbstract[] = [];
    for (const { window, limiter } of limiters) {
      try {
        await limiter.consume(key);
        taken.push(limiter);
      } catch (error) {
        // A slot of one window is worth nothing without the other: give it back.
        await Promise.allSettled(taken.map((l) => l.reward(key)));
        if (error instanceof RateLimiterRes) return { window, retryAfterMs: error.msBeforeNext };
        throw error;
      }
    }
    return undefined;
  }

  async block(key: string, ms: number): Promise<void> {
    const minute = (await this.limiters())[0]?.limiter;
    await minute?.block(key, Math.ceil(ms / 1000));
  }

  private lib() {
    this.loadLib ??= import('rate-limiter-flexible');
    return this.loadLib;
  }

  private limiters() {
    this.loading ??= this.lib().then((lib) =>
      this.windows.map((window) => ({
        window,
        limiter: new lib.RateLimiterMemory({
          keyPrefix: window.name,
          points: window.points,
          duration: window.seconds,
        }),
      })),
    );
    return this.loading;
  }
}

/**
 * Defender's limit on machine actions (100 a minute and 1,500 an hour per tenant and API), counted in
 * Redis so every replica draws from the same slots (in memory in local mode). A slot is taken from both
 * windows or from neither. A 429 from Defender blocks the minute window for as long as its Retry-After
 * says, on every replica.
 */
export class DefenderPacer implements SubmissionPacer {
  private readonly windows: Window[];
  private readonly counts: WindowCounts;

  constructor(private readonly options: DefenderPacerOptions) {
    this.windows = [
      { name: 'minute', points: options.perMinute, seconds: 60, per: 'a minute' },
      { name: 'hour', points: options.perHour, seconds: 3_600, per: 'an hour' },
    ];
    this.counts = options.redis
      ? new RedisWindowCounts(options.redis, this.windows, options.keyPrefix ?? 'mdr:')
      : new MemoryWindowCounts(this.windows);
  }

  async take(api: string): Promise<SlotAnswer> {
    let refusal: Refusal;
    try {
      refusal = await this.counts.take(this.keyOf(api));
    } catch (error) {
      // Without the shared count, sending could break the limit for every replica: wait instead.
      return {
        ok: false,
        retryAfterMs: UNREACHABLE_RETRY_MS,
        reason: `the Defender rate count could not be read (${error instanceof Error ? error.message : String(error)})`,
      };
    }
    if (!refusal) return { ok: true };
    const { window, retryAfterMs } = refusal;
    return {
      ok: false,
      retryAfterMs: Math.max(1, retryAfterMs),
      reason: `Defender allows ${window.points} ${api} requests ${window.per} per tenant`,
    };
  }

  async pause(api: string, ms: number): Promise<void> {
    if (ms <= 0) return;
    // Whole seconds, rounded up: Retry-After is given in seconds.
    await this.counts.block(this.keyOf(api), Math.ceil(ms / 1000) * 1000).catch(() => undefined);
  }

  private keyOf(api: string): string {
    return `${this.options.tenant}:${api}`;
  }
}
