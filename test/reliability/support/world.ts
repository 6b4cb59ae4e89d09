import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { type Child, killAllChildrenNow, startChild, waitForHttp } from '../../../bench/support/children.js';
import { type Fakes, startFakes } from '../../../bench/support/fakes.js';
import { type Exchange, keepAliveAgent, runSenders, send } from '../../../bench/support/http.js';
import { freePort } from '../../../bench/support/redis-stats.js';
import { sampleIngestBody } from '../../support/incident-factory.js';
import { answersPing } from '../../support/redis-server.js';
import { blockActionsPayload, formBody, slackSignatureHeaders } from '../../support/slack.js';
import { TENANT_ID } from '../../support/teams.js';
import { type FlakySlack, type SlackFaults, startFlakySlack } from './flaky-slack.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BOT_MAIN = join(ROOT, 'dist/bot/main.js');
const SIGNING_SECRET = 'reliability-signing-secret-0123456789';
const INGEST_TOKEN = 'reliability-ingest-token-0123456789';
const KEY_PREFIX = 'rel:';
const DEFENDER_CLIENT_ID = 'b0b0b0b0-0000-4000-8000-00000000de7e';
/** The channel of the policy; the clicks come from it. */
const CHANNEL = 'C0SOC';
/** Two experts, approving as fast as they can click. */
export const EXPERTS = ['U0RELEXPERT1', 'U0RELEXPERT2'] as const;

/** Action states after which nothing more happens to an action without a person. */
export const FINAL_STATES = new Set(['succeeded', 'failed', 'rejected', 'customerPending']);

// A scenario that is stopped half-way (timeout, crash of the runner) still ends the processes it started.
process.once('exit', killAllChildrenNow);

/** "1,000" */
export const count = (n: number) => n.toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until `check` answers true, polling; fails after `timeoutMs` with `what` and the last thing
 * `describe` said about the state (so a failure shows how far it got).
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs: number; pollMs?: number; describe?: () => Promise<string> | string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const state = options.describe ? `: ${await options.describe()}` : '';
      throw new Error(`${what}: not reached within ${options.timeoutMs / 1000} s${state}`);
    }
    await sleep(options.pollMs ?? 250);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

function exited(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.process.once('exit', () => resolve()));
}

/**
 * A private redis-server on a fixed loopback port, in its own process group, that a scenario can crash
 * (`kill -9`) and start again on the same port. Durable: the append-only file is written and synced
 * before each write is acknowledged, so what Redis acknowledged survives the crash.
 */
export class RedisServer {
  private child: Child | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly durable: boolean,
  ) {}

  static async start(dir: string, durable: boolean): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), dir, durable);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.durable
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir]
      : ['--appendonly', 'no'];
    const child = startChild(
      'redis-server',
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence],
      { PATH: process.env.PATH },
    );
    this.child = child;
    await waitUntil(
      `redis-server on port ${this.port} answers`,
      async () => {
        if (child.process.exitCode !== null) throw new Error(`redis-server exited:\n${child.tail()}`);
        return answersPing(this.url);
      },
      { timeoutMs: 10_000, pollMs: 50 },
    );
  }

  /** `kill -9`: no shutdown, no save beyond what was already synced. */
  async crash(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    signalGroup(child.pid, 'SIGKILL');
    await exited(child);
  }

  async stop(): Promise<void> {
    await this.child?.stop(1_000);
    this.child = undefined;
  }
}

/** One bot process (`node dist/bot/main.js`), in its own process group. */
export interface Bot {
  name: string;
  url: string;
  child: Child;
}

/** What the bot answers for `GET /api/incidents/{id}` (the fields the scenarios read). */
export interface IncidentJson {
  id: string;
  managedStatus: string;
  actions: { id: string; state: string; decidedBy?: string | null }[];
}

export interface WorldOptions {
  /** Defender completes a machine action this long after it was submitted (default 2 s). */
  defenderDelayMs?: number;
  /** Redis keeps what it acknowledged across a crash (append-only file, synced on every write). */
  durableRedis?: boolean;
  /** Card calls to Slack fail at these rates (a flaky Slack in front of the fake). */
  slackFaults?: SlackFaults;
}

/**
 * Everything a scenario runs against, on loopback: a private redis-server, the fakes of Slack,
 * Defender, Graph and Entra (bench/support/fakes.ts), and bot processes started as users run them,
 * configured for all of it. Incident ids are unique to the world.
 */
export class World {
  private readonly bots: Bot[] = [];
  private readonly agent: Agent = keepAliveAgent(64);
  private admin: Redis | undefined;

  private constructor(
    /** Unique to this world: incident ids are `rel<run>-000001`. */
    readonly run: string,
    readonly dir: string,
    readonly redis: RedisServer,
    readonly fakes: Fakes,
    readonly flakySlack: FlakySlack | undefined,
    private readonly policyFile: string,
    private readonly certFile: string,
  ) {}

  static async start(options: WorldOptions = {}): Promise<World> {
    const dir = mkdtempSync(join(tmpdir(), 'mdr-reliability-'));
    const tls = inject('loginTls');
    const run = randomBytes(3).toString('hex');
    const pattern = new RegExp(`rel${run}-\\d{6}`);
    const redis = await RedisServer.start(dir, options.durableRedis ?? false);
    let fakes: Fakes | undefined;
    let flaky: FlakySlack | undefined;
    try {
      fakes = await startFakes({
        defenderDelayMs: options.defenderDelayMs ?? 2_000,
        // The scenarios are about exactly-once, not pacing: no API limits here, and none in the bot.
        defenderLimits: false,
        defenderClientId: DEFENDER_CLIENT_ID,
        jwks: { keys: [] },
        tls: { key: readFileSync(tls.keyFile, 'utf8'), cert: readFileSync(tls.certFile, 'utf8') },
        incidentPattern: pattern,
      });
      flaky = options.slackFaults
        ? await startFlakySlack(fakes.slackUrl, options.slackFaults, pattern)
        : undefined;
    } catch (error) {
      await fakes?.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      [
        'roles:',
        `  experts: [${EXPERTS.map((e) => `slack:${e}`).join(', ')}]`,
        '  admins: []',
        'exclusions: {devices: [], users: []}',
        'channels:',
        `  slack: ${CHANNEL}`,
        '',
      ].join('\n'),
    );
    return new World(run, dir, redis, fakes, flaky, policyFile, tls.certFile);
  }

  incidentId(n: number): string {
    return `rel${this.run}-${String(n).padStart(6, '0')}`;
  }

  /** Start one more replica and wait until it answers. */
  async startBot(name: string): Promise<Bot> {
    const port = await freePort();
    const env = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      NODE_EXTRA_CA_CERTS: this.certFile,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      REDIS_URL: this.redis.url,
      REDIS_KEY_PREFIX: KEY_PREFIX,
      INGEST_TOKEN,
      POLICY_FILE: this.policyFile,
      SLACK_BOT_TOKEN: 'xoxb-reliability-0000-bot-token',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: `${this.flakySlack?.url ?? this.fakes.slackUrl}/api/`,
      DEFENDER_TENANT_ID: TENANT_ID,
      DEFENDER_CLIENT_ID,
      DEFENDER_CLIENT_SECRET: 'reliability-defender-secret-0123456789',
      AZURE_AUTHORITY_HOST: this.fakes.loginUrl,
      DEFENDER_API_URL: this.fakes.defenderUrl,
      GRAPH_API_URL: this.fakes.graphUrl,
      ALLOW_INSECURE_URLS: 'true',
      DEFENDER_ACTIONS_PER_MINUTE: '1000000',
      DEFENDER_ACTIONS_PER_HOUR: '1000000',
    };
    const child = startChild(name, process.execPath, [BOT_MAIN], env);
    const bot = { name, url: `http://127.0.0.1:${port}`, child };
    this.bots.push(bot);
    await waitForHttp(`${bot.url}/healthz`, child);
    return bot;
  }

  /** `kill -9` of the replica's process group. */
  async kill(bot: Bot): Promise<void> {
    signalGroup(bot.child.pid, 'SIGKILL');
    await exited(bot.child);
  }

  /**
   * SIGTERM to the replica, as an orchestrator stops it; resolves with the milliseconds it took to exit
   * and how it exited (if it has not exited `limitMs` after, it is killed: signal SIGKILL).
   */
  async terminate(
    bot: Bot,
    limitMs: number,
  ): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
    const started = performance.now();
    signalGroup(bot.child.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(bot.child.pid, 'SIGKILL'), limitMs);
    await exited(bot.child);
    clearTimeout(timer);
    return {
      ms: performance.now() - started,
      code: bot.child.process.exitCode,
      signal: bot.child.process.signalCode,
    };
  }

  /** The ingest body of incident `id`: the sample incident with one proposed isolation of a device of its own. */
  ingestBody(id: string): string {
    const deviceId = createHash('sha1').update(`${id}:device`).digest('hex');
    return JSON.stringify(
      sampleIngestBody({
        incident: { id },
        actions: [
          {
            id: 'act-1',
            type: 'isolateDevice',
            status: 'proposed',
            target: { deviceId, deviceName: `ws-${id}.corp.contoso.com` },
            reason: 'beaconing to known C2',
          },
        ],
      }),
    );
  }

  ingest(bot: Bot, id: string): Promise<Exchange> {
    return send(this.agent, `${bot.url}/api/incidents`, {
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
      body: this.ingestBody(id),
    });
  }

  /** Ingest every incident with `senders` senders; fails unless every one is accepted. */
  async ingestAll(bots: Bot[], ids: string[], senders = 20): Promise<void> {
    const results = await runSenders(ids, senders, (id, i) => this.ingest(bots[i % bots.length]!, id));
    const refused = results.filter((r) => r.status !== 200 && r.status !== 201);
    if (refused.length > 0) {
      throw new Error(
        `${refused.length} of ${ids.length} ingests refused, first: ${refused[0]!.status} ${refused[0]!.body.slice(0, 300)}`,
      );
    }
  }

  /** A signed Slack click on the incident's `verb` button for act-1, as `user`. */
  click(bot: Bot, id: string, verb: 'approve' | 'reject', user: string): Promise<Exchange> {
    const payload = blockActionsPayload(
      user,
      {
        action_id: `${verb}:act-1`,
        value: JSON.stringify({ incidentId: id, actionId: 'act-1' }),
        text: verb === 'approve' ? 'Approve' : 'Reject',
      },
      { response_url: `${this.fakes.slackUrl}/actions/T0CONTOSO/${id}/reliability` },
    );
    const body = formBody({ payload: JSON.stringify(payload) });
    return send(this.agent, `${bot.url}/slack/events`, {
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...slackSignatureHeaders(body, { secret: SIGNING_SECRET }),
      },
      body,
    });
  }

  /** `GET /api/incidents/{id}`, or null when the bot does not answer 200. */
  async incident(bot: Bot, id: string): Promise<IncidentJson | null> {
    const r = await send(this.agent, `${bot.url}/api/incidents/${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${INGEST_TOKEN}` },
    });
    return r.status === 200 ? (JSON.parse(r.body) as IncidentJson) : null;
  }

  /** The state of act-1 of every incident (`missing` when the bot does not know the incident). */
  async actionStates(bot: Bot, ids: string[]): Promise<Map<string, string>> {
    const states = await runSenders(ids, 16, async (id) => {
      const incident = await this.incident(bot, id);
      return incident?.actions.find((a) => a.id === 'act-1')?.state ?? 'missing';
    });
    return new Map(ids.map((id, i) => [id, states[i]!]));
  }

  /** Wait until act-1 of every incident is in one of `states`; returns the states. */
  async waitForStates(
    bot: Bot,
    ids: string[],
    states: Set<string>,
    timeoutMs: number,
  ): Promise<Map<string, string>> {
    let last = new Map<string, string>();
    await waitUntil(
      `act-1 of all ${ids.length} incidents ${[...states].join(' or ')}`,
      async () => {
        last = await this.actionStates(bot, ids);
        return [...last.values()].every((s) => states.has(s));
      },
      {
        timeoutMs,
        pollMs: 500,
        describe: () =>
          `${JSON.stringify(tally(last.values()))}; last lines of ${bot.name}:\n${bot.child.tail()}`,
      },
    );
    return last;
  }

  /**
   * Machine-action POSTs the fake Defender received, apart from those it refused for its rate limit
   * (those the bot must send again): a second one for an action is a duplicate submission, whether
   * Defender accepted it or refused it as already in progress.
   */
  defenderPosts(): { incidentId: string | null }[] {
    return this.fakes.seen.defender.posts.filter((post) => post.status !== 429);
  }

  /** `defenderPosts()` by incident (the comment names the incident). */
  submitsByIncident(): Map<string, number> {
    const byIncident = new Map<string, number>();
    for (const { incidentId } of this.defenderPosts()) {
      const key = incidentId ?? '(no incident named)';
      byIncident.set(key, (byIncident.get(key) ?? 0) + 1);
    }
    return byIncident;
  }

  /**
   * Jobs still to run in any of the bot's queues (waiting, running, delayed), apart from the
   * repeating jobs of job schedulers, which are always there, and in its light lanes.
   */
  async pendingJobs(): Promise<number> {
    if (!this.admin) {
      this.admin = new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
      this.admin.on('error', () => {});
    }
    const prefix = `${KEY_PREFIX}{bull}`;
    const names = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const name = key.slice(prefix.length + 1).split(':')[0];
        if (name) names.add(name);
      }
    } while (cursor !== '0');
    let pending = 0;
    for (const name of names) {
      const queue = new Queue(name, { connection: { host: '127.0.0.1', port: this.redis.port }, prefix });
      try {
        const jobs = await queue.getJobs([
          'wait',
          'active',
          'delayed',
          'prioritized',
          'paused',
          'waiting-children',
        ]);
        pending += jobs.filter((job) => job && !String(job.id).startsWith('repeat:')).length;
      } finally {
        await queue.close();
      }
    }
    // The light lanes (execution, card delivery): one sorted set each, a member per job still to run.
    cursor = '0';
    do {
      const [next, keys] = await this.admin.scan(cursor, 'MATCH', `${KEY_PREFIX}{lane:*}:due`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) pending += await this.admin.zcard(key);
    } while (cursor !== '0');
    return pending;
  }

  /** Wait until no job is left to run: every follow-up of what the scenario did has happened. */
  async waitForIdleQueues(timeoutMs: number): Promise<void> {
    let last = 0;
    await waitUntil(
      'every job queue drained',
      async () => {
        last = await this.pendingJobs();
        return last === 0;
      },
      { timeoutMs, pollMs: 500, describe: () => `${last} jobs still to run` },
    );
  }

  /** Kill every process of the world, close the fakes and remove the files. */
  async close(): Promise<void> {
    for (const bot of this.bots) signalGroup(bot.child.pid, 'SIGKILL');
    await Promise.all(this.bots.map((bot) => exited(bot.child)));
    await Promise.all(this.bots.map((bot) => bot.child.stop()));
    this.admin?.disconnect();
    await this.redis.stop();
    this.agent.destroy();
    await this.flakySlack?.close();
    await this.fakes.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** How many of each value: {"succeeded": 198, "executing": 2}. */
export function tally(values: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
