import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { MdrError } from '../core/errors.js';
import { backoffMs } from './backoff.js';
import type { JobHandler, JobOptions } from './job-queue.js';
import type { QueueLogger } from './local-queue.js';
import { asStoreUnavailable, waitUntilReady } from './redis-connection.js';

// KEYS: due, state (a hash: `r:<group>` = lease end of the group's run under way, `w:<group>` = a due job
// waits for that run to end, `t:<job>` = failures). ARGV: now, lease end, most jobs to take, how many jobs
// to look at. Takes the due jobs whose group has no run under way (one of each group), moving each to the
// lease end (a job whose process dies runs again then), and marks the groups whose due jobs wait (the end
// of their run then tells its process to look). Returns the jobs taken with the failures each had so far,
// the time of the first job not yet due ('' when none was among those looked at: one ZRANGE by rank reads
// both, the due jobs coming first), and how many due jobs another process could take now (left for want
// of slots here).
const CLAIM_SCRIPT = `
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[3])
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1, 'WITHSCORES')
local due, nextAt = {}, ''
for i = 1, #rows, 2 do
  if tonumber(rows[i + 1]) > now then
    nextAt = rows[i + 1]
    break
  end
  due[#due + 1] = rows[i]
end
if #due == 0 then return {{}, {}, nextAt, 0} end
local fields = {}
for i, m in ipairs(due) do
  local ok, job = pcall(cjson.decode, m)
  local g = (ok and type(job) == 'table' and type(job[4]) == 'string') and job[4] or m
  fields[i] = 'r:' .. g
  fields[#due + i] = 't:' .. m
end
local state = redis.call('HMGET', KEYS[2], unpack(fields))
local taken, tries, scores, leases, seen, waiting, left = {}, {}, {}, {}, {}, {}, 0
for i, m in ipairs(due) do
  local g = fields[i]
  local held = state[i]
  if seen[g] or (held and tonumber(held) > now) then
    if not waiting[g] then
      waiting[g] = true
      leases[#leases + 1] = 'w' .. string.sub(g, 2)
      leases[#leases + 1] = '1'
    end
  else
    seen[g] = true
    if #taken < want then
      taken[#taken + 1] = m
      tries[#tries + 1] = state[#due + i] or ''
      scores[#scores + 1] = ARGV[2]
      scores[#scores + 1] = m
      leases[#leases + 1] = g
      leases[#leases + 1] = ARGV[2]
    else
      left = left + 1
    end
  end
end
if #leases > 0 then redis.call('HSET', KEYS[2], unpack(leases)) end
if #taken == 0 then return {{}, {}, nextAt, 0} end
redis.call('ZADD', KEYS[1], 'XX', unpack(scores))
return {taken, tries, nextAt, left}
`;

// The end of a run of the group `field` (ARGV[3], `r:<group>`) whose lease is still this run's (ARGV[2]):
// its lease and its waiting mark go in one HDEL. Returns 1 when a job of the group was waiting for it (so
// the process looks now), else 0.
const END_RUN_LUA = `
local function endRun(mine)
  local held = mine and ARGV[2] or redis.call('HGET', KEYS[2], ARGV[3])
  if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
  return redis.call('HDEL', KEYS[2], ARGV[3], 'w' .. string.sub(ARGV[3], 2)) - 1
end
`;

// KEYS: due, state. ARGV: job, lease end, group field, had tries ('1'/'0'). Ends the group's run (when its
// lease is still this run's: the job's score unmoved says so without a read, since any other claim moves
// it) and removes the job unless it was added again while it ran (its score moved: it runs again at that
// time). Returns {1 when a job of the group waits, the time the job runs again or ''}.
const FINISH_SCRIPT = `${END_RUN_LUA}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local mine = s and tonumber(s) == tonumber(ARGV[2])
if mine then redis.call('ZREM', KEYS[1], ARGV[1]) end
local waits = endRun(mine)
if ARGV[4] == '1' then redis.call('HDEL', KEYS[2], 't:' .. ARGV[1]) end
return {waits, (mine or not s) and '' or s}
`;

// KEYS: due, state. ARGV: job, lease end, group field, now, backoff ms, attempts. Ends the group's run
// (when its lease is still this run's) and counts a failure; the job runs again after back-off, or is
// dropped after its last attempt (unless it was added again while it ran). Returns {failures so far, or 0
// when dropped; 1 when a job of the group waits}.
const FAIL_SCRIPT = `${END_RUN_LUA}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local mine = s and tonumber(s) == tonumber(ARGV[2])
local waits = endRun(mine)
local n = redis.call('HINCRBY', KEYS[2], 't:' .. ARGV[1], 1)
if n >= tonumber(ARGV[6]) then
  redis.call('HDEL', KEYS[2], 't:' .. ARGV[1])
  if mine then redis.call('ZREM', KEYS[1], ARGV[1]) end
  return {0, waits}
end
if mine then
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[4]) + tonumber(ARGV[5]) * 2 ^ (n - 1), ARGV[1])
end
return {n, waits}
`;

// KEYS: due, state. ARGV: job, lease end, group field, new lease end. Extends a running job's lease while
// it is still this run's (the group's run under way, and the job's score unless it was added again):
// 1, or 0 when the lease is no longer this run's (it ended and another run took the job).
const EXTEND_SCRIPT = `
local held = redis.call('HGET', KEYS[2], ARGV[3])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1]) end
return 1
`;

/** Why a run's signal aborted: its lease ended (or was taken) without being extended. */
export class LeaseLostError extends Error {
  constructor(lane: string, job: string) {
    super(`the lease of job "${job}" in lane "${lane}" ended before the job did`);
    this.name = 'LeaseLostError';
  }
}

/** A job running in this process, and the run taken after it (the latest claim) if any. */
interface ActiveJob {
  done: Promise<void>;
  next: { claimScore: number; failures: number } | undefined;
}

/** How one light lane runs. */
export interface RedisWorkLaneOptions {
  /** A connection of its own (commands pipelined automatically; failing fast while Redis is away). */
  redis: Redis | Cluster;
  /** Key prefix of the lane; its keys share one hash tag, so its scripts run on Redis Cluster too. */
  prefix: string;
  lane: string;
  /** Jobs this process runs at once. */
  concurrency: number;
  /** Attempts of each job, the first included. */
  attempts: number;
  /** First retry delay; doubled on each further attempt. */
  backoffMs: number;
  /** A job taken by a process that died runs again after this long. */
  leaseMs?: number;
  /**
   * A connection of its own for notifications (it subscribes): a process that adds a job it cannot start
   * at once, or sees more due jobs than it has slots for, tells the others to look now.
   */
  subscriber?: Redis | Cluster;
  /**
   * How often an idle process looks for jobs other processes added or left without telling it (1 s; 10 s
   * with a subscriber: then a look is only a safety net, since each look also learns when the next job
   * of the lane falls due, a delayed one or a lease of a process that died, and looks again then).
   */
  pollMs?: number;
  logger: QueueLogger;
  handler(name: string): JobHandler | undefined;
}

/**
 * A light lane of the job queue: each job is one member of a Redis sorted set scored by the time it is
 * due, and every process takes the due jobs in batches with one script (a few Redis commands per job
 * where a BullMQ job costs about 45). Taking a job moves its score to the end of a lease, so a job whose
 * process died runs again once the lease ends; a job added again while it runs (the same id, or the same
 * coalescing key) keeps a new score and runs again after the run that was under way.
 *
 * Jobs of one group (`JobOptions.group`) run one at a time across every process.
 *
 * A job is `[name, id or coalescing key, data, group?]` as JSON: the same id with the same data is one job while
 * it waits or runs (added again once it finished, it runs again); with a coalescing key, adds while one
 * waits keep the earliest time. Attempts are the lane's, not each job's.
 */
export class RedisWorkLane {
  private readonly dueKey: string;
  private readonly stateKey: string;
  private readonly channel: string;
  /** This process in the lane's notifications (its own are not for it). */
  private readonly sender = randomUUID();
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly running = new Set<Promise<void>>();
  /** The last run of each job in this process: a job taken again while it runs here runs after it. */
  private readonly active = new Map<string, ActiveJob>();
  private readonly localDue: number[] = [];
  private waiter: (() => void) | undefined;
  private woken = false;
  private timer: NodeJS.Timeout | undefined;
  /** When the first job not yet due at the last look falls due (a job of any process). */
  private nextDue: number | undefined;
  private lastHelp = 0;
  /**
   * A look may find due jobs this process did not take: its last look left some for want of free slots,
   * or it was told to look while none was free. The next end of a run looks then; otherwise a run's end
   * looks only when a job of its group waits for it or it was added again meanwhile.
   */
  private lookOwed = false;
  private helpTimer: NodeJS.Timeout | undefined;
  private readonly onMessage = (channel: string, message: string) => {
    if (channel === this.channel && message !== this.sender) this.signal();
  };
  /** Notifications may have been missed while the subscriber was away: look now. */
  private readonly onSubscriberReady = () => this.signal();
  private loop: Promise<void> | undefined;
  private closing = false;
  private down = false;

  constructor(private readonly options: RedisWorkLaneOptions) {
    const tag = `${options.prefix}{lane:${options.lane}}`;
    this.dueKey = `${tag}:due`;
    this.stateKey = `${tag}:state`;
    this.channel = `${tag}:look`;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollMs = options.pollMs ?? (options.subscriber ? 10_000 : 1_000);
    const redis = options.redis;
    redis.defineCommand('mdrLaneClaim', { numberOfKeys: 2, lua: CLAIM_SCRIPT });
    redis.defineCommand('mdrLaneFinish', { numberOfKeys: 2, lua: FINISH_SCRIPT });
    redis.defineCommand('mdrLaneFail', { numberOfKeys: 2, lua: FAIL_SCRIPT });
    redis.defineCommand('mdrLaneExtend', { numberOfKeys: 2, lua: EXTEND_SCRIPT });
  }

  /** The member of a job: its name, id (or coalescing key) and data. */
  static member(name: string, key: string, data: unknown, group?: string): string {
    return JSON.stringify(group === undefined ? [name, key, data ?? null] : [name, key, data ?? null, group]);
  }

  async add(name: string, data: unknown, options: JobOptions = {}): Promise<void> {
    const key = options.id ?? options.coalesce ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const delayMs = Math.max(0, Math.round(options.delayMs ?? 0));
    const at = Date.now() + delayMs;
    // An id is added once while it waits or runs; a coalescing key keeps the earliest time.
    const mode = options.id !== undefined ? 'NX' : 'LT';
    let changed: number;
    try {
      await waitUntilReady(this.options.redis);
      const added = this.options.redis.zadd(
        this.dueKey,
        mode,
        'CH',
        at,
        RedisWorkLane.member(name, key, data, options.group),
      );
      // Sent after the ZADD on the same connection: whoever looks on this notification finds the job.
      if (!this.loop || this.closing || this.running.size >= this.options.concurrency) this.help();
      changed = Number(await added);
    } catch (error) {
      throw asStoreUnavailable(error);
    }
    // Unchanged: the job waits for an earlier (or the same) time, which its adder looks at already.
    if (changed > 0) this.dueAt(at);
  }

  /**
   * Tells the other processes to look now (those with free slots take what is due; each also learns when
   * the next job falls due). At most one notification per 100 ms, the last one sent at the end of it, so
   * a look always follows every call.
   */
  private help(): void {
    const subscriber = this.options.subscriber;
    if (!subscriber || this.helpTimer) return;
    const send = () => {
      this.helpTimer = undefined;
      this.lastHelp = Date.now();
      this.options.redis.publish(this.channel, this.sender).catch(() => {
        // Not reachable: the others find the job at their next look.
      });
    };
    const wait = this.lastHelp + 100 - Date.now();
    if (wait <= 0) send();
    else this.helpTimer = setTimeout(send, wait);
  }

  async has(name: string, id: string, data: unknown): Promise<boolean> {
    try {
      await waitUntilReady(this.options.redis);
      const score = await this.options.redis.zscore(this.dueKey, RedisWorkLane.member(name, id, data));
      return score !== null;
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  start(): void {
    if (this.loop) return;
    const subscriber = this.options.subscriber;
    if (subscriber) {
      subscriber.on('message', this.onMessage);
      subscriber.on('ready', this.onSubscriberReady);
      // ioredis subscribes again after each reconnection.
      subscriber.subscribe(this.channel).catch((error: unknown) => {
        this.options.logger.error(
          { err: error, lane: this.options.lane },
          'job lane: not subscribed to notifications; jobs of other processes are found by polling',
        );
      });
    }
    this.loop = this.run();
  }

  /**
   * True while the loop waits for its next look (told by another process, a due time or the poll) and
   * no look is under way: what a caller waits for before relying on the next look being a new one.
   */
  get idle(): boolean {
    return this.waiter !== undefined && !this.woken;
  }

  /** Stops taking jobs and waits for the running ones. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.helpTimer) clearTimeout(this.helpTimer);
    const subscriber = this.options.subscriber;
    if (subscriber && this.loop) {
      subscriber.off('message', this.onMessage);
      subscriber.off('ready', this.onSubscriberReady);
      // Not awaited: while Redis is away it would wait for the reconnection (the owner closes the
      // connection anyway, which drops it).
      subscriber.unsubscribe(this.channel).catch(() => undefined);
    }
    this.signal();
    await this.loop;
    await Promise.allSettled([...this.running]);
  }

  /** A job of this process is due at `at`: look for it then (at once when it is due now). */
  private dueAt(at: number): void {
    if (!this.loop || this.closing) return;
    this.localDue.push(at);
    this.schedule();
  }

  /**
   * Sets the next look for jobs: at the earliest local due time or the lane's next due time, or after
   * `pollMs` (1 s while Redis is not reachable). Due times up to `claimedAt` (the claim just made, which
   * took what was due then) need no look of their own; a due time after it, already past, wakes the loop
   * at once.
   */
  private schedule(claimedAt = Number.NEGATIVE_INFINITY): void {
    const now = Date.now();
    let next = now + (this.down ? Math.min(this.pollMs, 1_000) : this.pollMs);
    let dueNow = false;
    if (this.nextDue !== undefined) {
      // Acted on once: a process with no free slot looks again when one is free.
      if (this.nextDue <= now) {
        if (this.nextDue > claimedAt) dueNow = true;
        this.nextDue = undefined;
      } else if (this.nextDue < next) next = this.nextDue;
    }
    for (let i = this.localDue.length - 1; i >= 0; i--) {
      const at = this.localDue[i] as number;
      if (at <= now) {
        this.localDue.splice(i, 1);
        if (at > claimedAt) dueNow = true;
      } else if (at < next) next = at;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.signal(), Math.max(0, next - now));
    if (dueNow) this.signal();
  }

  /** Wakes the loop, or has its next wait end at once. */
  private signal(): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter();
    } else this.woken = true;
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      const free = this.options.concurrency - this.running.size;
      let full = false;
      let claimedAt = Number.NEGATIVE_INFINITY;
      if (free > 0) {
        claimedAt = Date.now();
        const claimed = await this.claim(free, claimedAt);
        full = claimed === free;
      } else this.lookOwed = true;
      if (this.closing) break;
      // A full batch: more may be due, look again as soon as a slot is free (while every slot is busy,
      // a job's end looks when the claim left some: see `lookOwed`).
      if (full && this.running.size < this.options.concurrency) continue;
      this.schedule(claimedAt);
      if (this.woken) {
        this.woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      this.woken = false;
    }
  }

  private async claim(most: number, now: number): Promise<number> {
    const leaseEnd = now + this.leaseMs;
    let reply: [string[], string[], string, number];
    try {
      await waitUntilReady(this.options.redis);
      const redis = this.options.redis as unknown as {
        mdrLaneClaim(...args: (string | number)[]): Promise<[string[], string[], string, number]>;
      };
      reply = await redis.mdrLaneClaim(this.dueKey, this.stateKey, now, leaseEnd, most, most + 64);
      this.nextDue = reply[2] === '' ? undefined : Number(reply[2]);
      this.lookOwed = reply[3] > 0;
      if (reply[3] > 0) this.help();
      if (this.down) {
        this.down = false;
        this.options.logger.warn({ lane: this.options.lane }, 'job lane: Redis is reachable again');
      }
    } catch (error) {
      this.nextDue = undefined;
      if (!this.down) {
        this.down = true;
        this.options.logger.error(
          { err: error, lane: this.options.lane },
          'job lane: Redis is not reachable, trying again',
        );
      }
      return 0;
    }
    const [members, tries] = reply;
    members.forEach((member, i) => {
      const failures = Number(tries[i] || 0);
      const active = this.active.get(member);
      if (active?.next) {
        // Already one run waiting behind the one under way: it is that run, now under this claim.
        active.next = { claimScore: leaseEnd, failures };
        return;
      }
      const entry: ActiveJob = active ?? { next: undefined, done: Promise.resolve() };
      entry.next = { claimScore: leaseEnd, failures };
      const job = entry.done
        .then(() => {
          const next = entry.next as { claimScore: number; failures: number };
          entry.next = undefined;
          return this.runJob(member, next.claimScore, next.failures);
        })
        .catch(() => true)
        .then((look) => {
          this.running.delete(job);
          if (entry.done === job && !entry.next) this.active.delete(member);
          if (look || this.lookOwed) this.signal();
        });
      entry.done = job;
      this.active.set(member, entry);
      this.running.add(job);
    });
    return members.length;
  }

  /** Runs one job and ends its run; true when the lane should look for jobs now (see `lookOwed`). */
  private async runJob(member: string, claimScore: number, failures: number): Promise<boolean> {
    let name = '?';
    const redis = this.options.redis as unknown as Record<
      string,
      (...args: (string | number)[]) => Promise<unknown>
    >;
    let group = `r:${member}`;
    const lease = new RunLease(this, member, claimScore);
    try {
      const [jobName, , data, inGroup] = JSON.parse(member) as [string, string, unknown, string?];
      name = jobName;
      if (typeof inGroup === 'string') group = `r:${inGroup}`;
      const handler = this.options.handler(jobName);
      if (!handler) throw new MdrError('internal', `no handler registered for job "${jobName}"`);
      lease.keep(group, jobName);
      await handler(data, { signal: lease.signal });
    } catch (error) {
      lease.stop();
      if (lease.lost) return this.leftToNextRun(name);
      const attempt = failures + 1;
      const final = attempt >= this.options.attempts;
      const details = { job: name, lane: this.options.lane, attempt, err: error };
      if (final) this.options.logger.error(details, 'job failed for good');
      else this.options.logger.warn(details, 'job failed, retrying');
      // Not reachable: the job stays under its lease and runs again when it ends.
      const now = Date.now();
      const reply = (await redis
        .mdrLaneFail?.(
          this.dueKey,
          this.stateKey,
          member,
          lease.end,
          group,
          now,
          this.options.backoffMs,
          this.options.attempts,
        )
        .catch(() => undefined)) as [number, number] | undefined;
      if (!reply) return true;
      const [tries, waits] = reply;
      if (tries > 0) this.dueAt(now + backoffMs(this.options.backoffMs, tries - 1));
      return waits > 0;
    }
    lease.stop();
    if (lease.lost) return this.leftToNextRun(name);
    const reply = (await redis
      .mdrLaneFinish?.(this.dueKey, this.stateKey, member, lease.end, group, failures > 0 ? '1' : '0')
      .catch(() => undefined)) as [number, string] | undefined;
    if (!reply) return true;
    const [waits, again] = reply;
    // Added again while it ran: it runs again at that time, here unless another process looks first.
    if (again !== '') this.dueAt(Number(again));
    return waits > 0;
  }

  /** A run whose lease ended: the job is another run's now (or runs again when it is taken). */
  private leftToNextRun(name: string): boolean {
    this.options.logger.warn(
      { job: name, lane: this.options.lane },
      'job lease ended before the job did: the run was told to stop and the job is left to its next run',
    );
    return true;
  }

  /** Extends a run's lease (see EXTEND_SCRIPT): true while it is still this run's. */
  async extend(member: string, end: number, group: string, newEnd: number): Promise<boolean> {
    const redis = this.options.redis as unknown as {
      mdrLaneExtend(...args: (string | number)[]): Promise<number>;
    };
    return (await redis.mdrLaneExtend(this.dueKey, this.stateKey, member, end, group, newEnd)) === 1;
  }

  get lease(): { ms: number; lane: string } {
    return { ms: this.leaseMs, lane: this.options.lane };
  }
}

/**
 * The lease of one run: extended every third of the lease while the job runs, so a long job keeps it; if
 * it cannot be extended in time (Redis unreachable, or the process stalled and another run took the job),
 * the run's signal aborts a sixth of the lease before it ends, and the run neither finishes nor fails
 * the job, which belongs to its next run. A job never runs on past its lease unextended.
 */
class RunLease {
  /** The current end of the lease (the job's score while it was not added again, and the group's run). */
  end: number;
  lost = false;
  private readonly controller = new AbortController();
  private renewTimer: NodeJS.Timeout | undefined;
  private abortTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly lane: RedisWorkLane,
    private readonly member: string,
    claimScore: number,
  ) {
    this.end = claimScore;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  keep(group: string, name: string): void {
    const { ms, lane } = this.lane.lease;
    const renewEvery = Math.max(1, Math.floor(ms / 3));
    const margin = Math.floor(ms / 6);
    const armAbort = () => {
      if (this.abortTimer) clearTimeout(this.abortTimer);
      this.abortTimer = setTimeout(() => this.lose(lane, name), Math.max(0, this.end - margin - Date.now()));
    };
    const renew = async () => {
      if (this.stopped) return;
      const newEnd = Date.now() + ms;
      try {
        const kept = await this.lane.extend(this.member, this.end, group, newEnd);
        if (this.stopped) return;
        if (!kept) return this.lose(lane, name);
        this.end = newEnd;
        armAbort();
      } catch {
        // Not reachable now: tried again at the next renewal; the abort timer stands meanwhile.
      }
      if (!this.stopped) this.renewTimer = setTimeout(renew, renewEvery);
    };
    armAbort();
    this.renewTimer = setTimeout(renew, renewEvery);
  }

  stop(): void {
    // A run that ends past its abort time (the process was too busy for the timer) lost its lease too.
    if (!this.stopped && !this.lost && Date.now() >= this.end - Math.floor(this.lane.lease.ms / 6)) {
      this.lost = true;
    }
    this.stopped = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.abortTimer) clearTimeout(this.abortTimer);
  }

  private lose(lane: string, name: string): void {
    if (this.stopped || this.lost) return;
    this.lost = true;
    this.stop();
    this.controller.abort(new LeaseLostError(lane, name));
  }
}
