import { randomUUID } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ActionState } from '../core/actions.js';
import { StoreUnavailableError } from '../core/errors.js';
import { chooseEntries, mayEnter, phaseOf, windowOf } from '../core/execution-phase.js';
import type {
  ActionRecord,
  AuditEntry,
  CardRefs,
  ExclusionChanges,
  Exclusions,
  IncidentRecord,
  IncidentState,
  Task,
} from '../core/model.js';
import type {
  ActionStore,
  ActionsWritten,
  AuditFeedEntry,
  CasResult,
  EntryDue,
  ExecutionPhase,
} from '../core/ports.js';
import { parseTaskId, statesBecoming, taskIdOf, taskOf } from '../core/tasks.js';
import { factsNeedActions } from '../core/webhook-events.js';
import { asStoreUnavailable, createRedisConnection, waitUntilReady } from './redis-connection.js';

export { createRedisCluster, createRedisConnection } from './redis-connection.js';

/** Tuning of the Redis store; the defaults suit production. */
export interface RedisStoreOptions {
  /** Approximate cap of each audit stream (XADD MAXLEN ~). */
  auditMaxLen?: number;
  /** Approximate cap of the audit feed, every incident's entries in one stream (XADD MAXLEN ~). */
  auditFeedMaxLen?: number;
  /** How long a call waits for a (re)connecting client before failing with StoreUnavailableError. */
  readyTimeoutMs?: number;
}

/** How to reach Redis: a client we are given (not closed by `close()`), or a URL to build one. */
export type RedisStoreConnection = Redis | Cluster | { url: string; options?: RedisOptions };

type Arg = string | number;

/** The audit feed: every audit entry, all incidents together, in the order written (`GET /api/audit`). */
const FEED = 'audit:feed';
/** The Teams conversation references (a hash), and the pub/sub channel announcing each change of them. */
const CONVERSATIONS = 'teams:conversations';
const CONVERSATIONS_CHANGED = 'teams:conversations:changed';
/** Incidents whose action order a store keeps in memory (a few hundred KB at most). */
const ORDERS_KEPT = 10_000;

/** Orders two stream ids (`<ms>-<seq>`). */
function compareStreamIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}
type Command = [name: string, ...args: Arg[]];
type TaskStatus = Task['state'];

/** Task states an action can still reach from each state: an index entry is only dropped when it cannot. */
const MAY_BECOME: Record<TaskStatus, readonly ActionState[]> = {
  pending: statesBecoming('pending'),
  done: statesBecoming('done'),
};

// The facts of an action write, kept with its audit feed line (`ActionsWritten` as JSON): `changed` (a
// Lua string of JSON objects) and every action of the incident (KEYS[actions]) right after the write,
// unless `withActions` is false (`factsNeedActions`: the write is no event and cannot resolve the incident).
const WRITTEN_LUA = `
local function written(changed, actionsKey, withActions)
  local actions = {}
  if withActions == false then return '{"changed":[' .. changed .. '],"actions":[]}' end
  for _, json in ipairs(redis.call('HVALS', actionsKey)) do
    local a = cjson.decode(json)
    actions[#actions + 1] = cjson.encode({ id = a['id'], version = a['version'], state = a['state'] })
  end
  return '{"changed":[' .. changed .. '],"actions":[' .. table.concat(actions, ',') .. ']}'
end
`;

// One slot per script: every key a script touches shares the incident's hash tag. The audit feed
// (KEYS[3], given on one Redis server only: on a cluster it lives in another slot) gets the entry and the
// write's facts in the same step; on a cluster the caller writes that line right after, from the reply.
// KEYS: actions, audit[, feed]. ARGV: action id, expected version, json, audit json|'', maxlen, feed
// maxlen, '1' when the facts need the incident's actions.
const CAS_SCRIPT = `${WRITTEN_LUA}
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {0} end
local before = cjson.decode(current)
if tonumber(before['version']) ~= tonumber(ARGV[2]) then return {0, current} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[4]) end
local facts = written('{"before":' .. cjson.encode(before['state']) .. ',"after":' .. ARGV[3] .. '}', KEYS[1], ARGV[7] == '1')
if KEYS[3] then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[4], 'w', facts) end
return {1, ARGV[3], facts}
`;

// KEYS: meta, actions, order, audit[, feed]. ARGV: meta, maxlen, feed maxlen, n, n x (id, json), then
// (actionId|'', json) pairs. The first feed line written carries the facts of the actions added.
const UPSERT_SCRIPT = `${WRITTEN_LUA}
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SET', KEYS[1], ARGV[1])
local n = tonumber(ARGV[4])
local added = {}
local changed = {}
local isAdded = {}
local i = 5
for _ = 1, n do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    added[#added + 1] = ARGV[i]
    changed[#changed + 1] = '{"before":null,"after":' .. ARGV[i + 1] .. '}'
    isAdded[ARGV[i]] = true
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
  i = i + 2
end
local facts = ''
if #added > 0 then facts = written(table.concat(changed, ','), KEYS[2]) end
local pending = facts
while i <= #ARGV do
  if ARGV[i] == '' or isAdded[ARGV[i]] then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[i + 1])
    if KEYS[5] then
      if pending ~= '' then
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[i + 1], 'w', pending)
        pending = ''
      else
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[i + 1])
      end
    end
  end
  i = i + 2
end
return {created and 1 or 0, added, facts}
`;

// KEYS: exclusion changes, policy audit (one slot). ARGV: expected version, changes json, maxlen, audit json.
const EXCLUSIONS_CAS_SCRIPT = `
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = tonumber(cjson.decode(current)['version']) end
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4])
return 1
`;

const NO_CHANGES: ExclusionChanges = {
  version: 0,
  added: { devices: [], users: [] },
  removed: { devices: [], users: [] },
};

const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

// KEYS: the channel's pause key. ARGV: until (epoch ms), ttl (ms). A later end wins.
const PAUSE_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/**
 * The durable store: Redis (or Redis Cluster), shared by every replica. One incident's keys share a
 * hash tag (`mdr:{inc:48213}:meta`, `:actions`, `:order`, `:audit`, `:cards`) so its scripts stay in
 * one slot; cross-incident indexes (`mdr:incidents`, `mdr:tasks:pending|done`,
 * `mdr:exec:approved|starting|submitted`) live in other slots, so
 * they are written in the same pipeline right after the script and every task is checked against its
 * action when listed: an index cut short never shows a wrong task (a done task left in `pending` is
 * moved to `done` on read). The audit feed (`mdr:audit:feed`, a stream of every audit entry, each action
 * write's line with its facts: the webhook outbox) is written by the transition and ingest scripts
 * themselves on one server, and right after them on a cluster (another slot). Every failure to reach
 * Redis is a `StoreUnavailableError`.
 */
export class RedisStore implements ActionStore {
  private readonly redis: Redis | Cluster;
  private readonly owned: boolean;
  private readonly auditMaxLen: number;
  private readonly auditFeedMaxLen: number;
  private readonly readyTimeoutMs: number;
  private lastScore = 0;
  /** Leases this instance holds, by name, with the token that proves it. */
  private readonly leases = new Map<string, string>();
  /**
   * The stored Teams conversations as last read (every card delivery reads them), kept while this
   * process is subscribed to their change announcements: a change by any process drops it, and so does
   * every (re)subscription, since announcements may have been missed meanwhile.
   */
  private conversations: Record<string, string> | undefined;
  /** Bumped by every change seen: a read that started before one is not kept. */
  private conversationsSeen = 0;
  private listener: Redis | Cluster | undefined;
  private listening = false;
  private closed = false;
  /**
   * Each incident's action order (its `:order` list) as last read. The list only grows (an ingest
   * appends the actions it adds, and nothing removes any), so while every action read is in it, it is
   * still the whole order and is not read again. The least recently read are dropped past ORDERS_KEPT.
   */
  private readonly orders = new Map<string, string[]>();

  constructor(
    connection: RedisStoreConnection,
    private readonly prefix = 'mdr:',
    options: RedisStoreOptions = {},
  ) {
    const client =
      connection instanceof Redis || connection instanceof Cluster
        ? connection
        : createRedisConnection(connection.url, connection.options);
    this.owned = !(connection instanceof Redis || connection instanceof Cluster);
    // An error event without a listener would crash the process; failures surface on each call instead.
    if (this.owned) client.on('error', () => {});
    // One script each, named twice: with the audit feed as a last key (one server) or without (a
    // cluster). A fixed key count keeps ioredis routing by the first key (its auto-pipelining on a cluster).
    client.defineCommand('mdrCas', { numberOfKeys: 2, lua: CAS_SCRIPT });
    client.defineCommand('mdrCasFeed', { numberOfKeys: 3, lua: CAS_SCRIPT });
    client.defineCommand('mdrUpsert', { numberOfKeys: 4, lua: UPSERT_SCRIPT });
    client.defineCommand('mdrUpsertFeed', { numberOfKeys: 5, lua: UPSERT_SCRIPT });
    client.defineCommand('mdrUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT });
    client.defineCommand('mdrExclusionsCas', { numberOfKeys: 2, lua: EXCLUSIONS_CAS_SCRIPT });
    client.defineCommand('mdrPause', { numberOfKeys: 1, lua: PAUSE_SCRIPT });
    this.redis = client;
    this.auditMaxLen = options.auditMaxLen ?? 10_000;
    this.auditFeedMaxLen = options.auditFeedMaxLen ?? 100_000;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 500;
  }

  async upsertIncident(incident: IncidentRecord, actions: ActionRecord[], audit: AuditEntry[]) {
    const keys = this.incidentKeys(incident.id);
    const own = audit.filter((e) => e.incidentId === incident.id);
    const foreign = audit.filter((e) => e.incidentId !== incident.id);
    const feedInScript = !(this.redis instanceof Cluster);
    const args: Arg[] = [
      keys.meta,
      keys.actions,
      keys.order,
      keys.audit,
      ...(feedInScript ? [this.key(FEED)] : []),
      JSON.stringify(incident),
      this.auditMaxLen,
      this.auditFeedMaxLen,
      actions.length,
      ...actions.flatMap((a) => [a.id, JSON.stringify(a)]),
      ...own.flatMap((e) => [e.actionId ?? '', JSON.stringify(e)]),
    ];
    const commands: Command[] = [
      [feedInScript ? 'mdrUpsertFeed' : 'mdrUpsert', ...args],
      ['zadd', this.key('incidents'), Date.parse(incident.receivedAt) || 0, incident.id],
      ...actions.flatMap((a) => this.indexCommands(a)),
    ];
    const [reply] = (await this.run(commands)) as [[number, string[], string]];
    // The script appended the actions it added to the order, in this order.
    const known = this.orders.get(incident.id);
    if (known && reply[1].length > 0) this.rememberOrder(incident.id, [...known, ...reply[1]]);
    const addedIds = new Set(reply[1]);
    const added: ActionRecord[] = [];
    for (const action of actions) {
      if (addedIds.delete(action.id)) added.push(action);
    }
    const written = (e: AuditEntry) => e.actionId === undefined || reply[1].includes(e.actionId);
    const late = foreign.filter(written);
    // On a cluster the feed lives in another slot than the incident: its lines (the first with the facts)
    // follow the script, in the order written; on one server the script wrote the incident's own.
    const lines = [...(feedInScript ? [] : own.filter(written)), ...late];
    const feed = lines.map((e, i) => this.feedCommand(e, i === 0 && !feedInScript ? reply[2] : ''));
    if (late.length + feed.length > 0) await this.run([...late.map((e) => this.auditCommand(e)), ...feed]);
    return { created: reply[0] === 1, added: structuredClone(added) };
  }

  async getIncident(incidentId: string): Promise<IncidentState | null> {
    const keys = this.incidentKeys(incidentId);
    const known = this.orders.get(incidentId);
    const [meta, all, read] = (await this.run([
      ['get', keys.meta],
      ['hgetall', keys.actions],
      ...(known ? [] : [['lrange', keys.order, 0, -1] as Command]),
    ])) as [string | null, Record<string, string>, string[]?];
    if (meta === null) return null;
    let order = known ?? read ?? [];
    // An action not in the order known here was added since: read the order again.
    const knownIds = known && new Set(known);
    if (knownIds && Object.keys(all).some((id) => !knownIds.has(id))) {
      [order] = (await this.run([['lrange', keys.order, 0, -1]])) as [string[]];
    }
    this.rememberOrder(incidentId, order);
    const listed = new Set(order);
    const ids = [...order, ...Object.keys(all).filter((id) => !listed.has(id))];
    const actions = ids.flatMap((id) => (all[id] === undefined ? [] : [JSON.parse(all[id]) as ActionRecord]));
    return { incident: JSON.parse(meta) as IncidentRecord, actions };
  }

  async listIncidents(limit: number): Promise<IncidentRecord[]> {
    if (limit <= 0) return [];
    const ids = (await this.run([['zrevrange', this.key('incidents'), 0, limit - 1]]))[0] as string[];
    if (ids.length === 0) return [];
    const metas = (await this.run(ids.map((id) => ['get', this.incidentKeys(id).meta]))) as (string | null)[];
    return metas.flatMap((m) => (m === null ? [] : [JSON.parse(m) as IncidentRecord]));
  }

  async getAction(incidentId: string, actionId: string): Promise<ActionRecord | null> {
    const [json] = (await this.run([['hget', this.incidentKeys(incidentId).actions, actionId]])) as [
      string | null,
    ];
    return json === null ? null : (JSON.parse(json) as ActionRecord);
  }

  async loadForDecision(incidentId: string, actionId: string) {
    const keys = this.incidentKeys(incidentId);
    const [meta, action, ...exclusions] = (await this.run([
      ['get', keys.meta],
      ['hget', keys.actions, actionId],
      ...this.exclusionReads(),
    ])) as [string | null, string | null, ...unknown[]];
    if (meta == null || action == null) return null;
    return {
      incident: JSON.parse(meta) as IncidentRecord,
      action: JSON.parse(action) as ActionRecord,
      exclusionChanges: this.parseExclusionChanges(exclusions),
    };
  }

  async compareAndSet(
    next: ActionRecord,
    expectedVersion: number,
    audit: AuditEntry,
    before?: ActionRecord,
  ): Promise<CasResult> {
    const stored: ActionRecord = { ...next, version: expectedVersion + 1 };
    const keys = this.incidentKeys(next.incidentId);
    const sameSlot = audit.incidentId === next.incidentId;
    // On one server the feed line is written by the script itself, in the same step as the write.
    const feedInScript = sameSlot && !(this.redis instanceof Cluster);
    const cas: Command = [
      feedInScript ? 'mdrCasFeed' : 'mdrCas',
      keys.actions,
      keys.audit,
      ...(feedInScript ? [this.key(FEED)] : []),
      next.id,
      expectedVersion,
      JSON.stringify(stored),
      sameSlot ? JSON.stringify(audit) : '',
      this.auditMaxLen,
      this.auditFeedMaxLen,
      factsNeedActions(stored) ? '1' : '0',
    ];
    const previous = before?.version === expectedVersion ? before : undefined;
    const [reply] = (await this.run([cas, ...this.indexCommands(stored, previous)])) as [
      [number, string?, string?],
    ];
    if (reply[0] !== 1) {
      return { ok: false, current: reply[1] === undefined ? null : (JSON.parse(reply[1]) as ActionRecord) };
    }
    // An audit entry filed elsewhere (no incident id) cannot share the script's slot: it follows it.
    const after: Command[] = [
      ...(sameSlot ? [] : [this.auditCommand(audit)]),
      ...(feedInScript ? [] : [this.feedCommand(audit, reply[2] ?? '')]),
    ];
    if (after.length > 0) await this.run(after);
    return { ok: true, action: stored };
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.run([this.auditCommand(entry), this.feedCommand(entry)]);
  }

  async listAuditFeed(since: string | null, limit: number): Promise<AuditFeedEntry[]> {
    if (limit <= 0) return [];
    const [entries] = (await this.run([
      ['xrange', this.key(FEED), since === null ? '-' : `(${since}`, '+', 'COUNT', limit],
    ])) as [[string, string[]][]];
    return entries.map(([cursor, fields]) => {
      const written = fields[2] === 'w' && fields[3] ? (JSON.parse(fields[3]) as ActionsWritten) : undefined;
      return {
        cursor,
        entry: JSON.parse(fields[1] ?? 'null') as AuditEntry,
        ...(written ? { written } : {}),
      };
    });
  }

  async auditFeedGap(since: string): Promise<boolean> {
    let info: unknown[];
    try {
      [info] = (await this.run([['xinfo', 'STREAM', this.key(FEED)]])) as [unknown[]];
    } catch (error) {
      if (/no such key/i.test((error as Error).message)) return false;
      throw error;
    }
    const field = (name: string) => info[info.indexOf(name) + 1];
    const oldest = (field('first-entry') as [string, string[]] | null)?.[0];
    // Stream trimming drops the oldest lines: some were dropped when more were added than are kept.
    const dropped = Number(field('entries-added')) > Number(field('length'));
    return dropped && oldest !== undefined && compareStreamIds(oldest, since) > 0;
  }

  async listAudit(incidentId?: string, limit = 1_000): Promise<AuditEntry[]> {
    const stream = incidentId === undefined ? this.key('audit:policy') : this.incidentKeys(incidentId).audit;
    const [entries] = (await this.run([['xrevrange', stream, '+', '-', 'COUNT', limit]])) as [
      [string, string[]][],
    ];
    return entries.reverse().map(([, fields]) => JSON.parse(fields[1] ?? 'null') as AuditEntry);
  }

  async listTasks(status: TaskStatus, limit = 500): Promise<Task[]> {
    // A task marked done whose move in the index was cut short still sits in `pending`: file it first.
    if (status === 'done') await this.collectTasks('pending', Number.POSITIVE_INFINITY);
    return this.collectTasks(status, limit);
  }

  /**
   * Reads one phase index in order, checks each entry against its action, and drops the entries whose
   * action can no longer be in that phase (ended, or moved on), so the index does not grow.
   */
  async listActionsIn(phase: ExecutionPhase, limit = 500): Promise<ActionRecord[]> {
    const found: ActionRecord[] = [];
    await this.sweepIndex(
      this.key(`exec:${phase}`),
      () => found.length < limit,
      inPhase(phase, found, limit),
    );
    return found;
  }

  async sliceActionsIn(phase: ExecutionPhase, size: number, from: number, due?: EntryDue) {
    const index = this.key(`exec:${phase}`);
    // The index holds ids only (a few dozen bytes each): all of them, then only the window's actions.
    // Scores are microseconds since the epoch: when the entry was added (a submission's own time).
    const [rows] = (await this.run([['zrange', index, 0, -1, ...(due ? ['WITHSCORES'] : [])]])) as [string[]];
    const members = due ? rows.filter((_, i) => i % 2 === 0) : rows;
    const chosen = due
      ? chooseEntries(
          members.map((entry, i) => ({ entry, enteredMs: Number(rows[2 * i + 1]) / 1_000 })),
          size,
          from,
          due,
        )
      : windowOf(members, size, from);
    const actions: ActionRecord[] = [];
    await this.checkEntries(index, chosen, inPhase(phase, actions, size));
    return { total: members.length, actions };
  }

  async getExclusionChanges(): Promise<ExclusionChanges> {
    return this.parseExclusionChanges(await this.run(this.exclusionReads()));
  }

  async saveExclusionChanges(
    next: ExclusionChanges,
    expectedVersion: number,
    audit: AuditEntry,
  ): Promise<boolean> {
    const { legacy: _dropped, ...changes } = next;
    const stored: ExclusionChanges = { ...changes, version: expectedVersion + 1 };
    const [won] = await this.run([
      [
        'mdrExclusionsCas',
        this.exclusionChangesKey(),
        this.key('audit:policy'),
        expectedVersion,
        JSON.stringify(stored),
        this.auditMaxLen,
        JSON.stringify(audit),
      ],
    ]);
    if (won !== 1) return false;
    await this.run([this.feedCommand(audit)]);
    // The whole list of an earlier version was read as changes and is now replaced by them. Once the
    // changes exist it is never read again, so a failure to delete it loses nothing.
    if (expectedVersion === 0) await this.run([['del', this.key('exclusions')]]).catch(() => undefined);
    return true;
  }

  async getCardRefs(incidentId: string): Promise<CardRefs> {
    const [fields] = (await this.run([['hgetall', this.incidentKeys(incidentId).cards]])) as [
      Record<string, string>,
    ];
    const refs: CardRefs = {};
    if (fields.slack) refs.slack = JSON.parse(fields.slack) as CardRefs['slack'];
    if (fields.teams) refs.teams = JSON.parse(fields.teams) as CardRefs['teams'];
    return refs;
  }

  async setCardRefs(incidentId: string, refs: CardRefs): Promise<void> {
    const fields = Object.entries(refs).filter(([, value]) => value !== undefined);
    if (fields.length === 0) return;
    await this.run([
      ['hset', this.incidentKeys(incidentId).cards, ...fields.flatMap(([k, v]) => [k, JSON.stringify(v)])],
    ]);
  }

  async saveConversation(conversationId: string, reference: unknown): Promise<void> {
    await this.changeConversations([
      'hset',
      this.key(CONVERSATIONS),
      conversationId,
      JSON.stringify(reference),
    ]);
  }

  async removeConversation(conversationId: string): Promise<void> {
    await this.changeConversations(['hdel', this.key(CONVERSATIONS), conversationId]);
  }

  async listConversations() {
    this.listenForConversations();
    let all = this.listening ? this.conversations : undefined;
    if (!all) {
      const seen = this.conversationsSeen;
      [all] = (await this.run([['hgetall', this.key(CONVERSATIONS)]])) as [Record<string, string>];
      if (this.listening && seen === this.conversationsSeen) this.conversations = all;
    }
    return Object.entries(all).map(([conversationId, json]) => ({
      conversationId,
      reference: JSON.parse(json) as unknown,
    }));
  }

  /** A change of the stored conversations, announced to every process (this one's cache is dropped too). */
  private async changeConversations(change: Command): Promise<void> {
    this.conversationsChanged();
    try {
      await this.run([change, ['publish', this.key(CONVERSATIONS_CHANGED), '1']]);
    } finally {
      this.conversationsChanged();
    }
  }

  private conversationsChanged(): void {
    this.conversations = undefined;
    this.conversationsSeen += 1;
  }

  /**
   * Subscribes (once, on a connection of its own) to the announcements of conversation changes. The
   * cache is used only once a subscription is confirmed; each reconnection drops it and subscribes again.
   */
  private listenForConversations(): void {
    if (this.listener || this.closed) return;
    const channel = this.key(CONVERSATIONS_CHANGED);
    const options = {
      connectionName: 'mdr-store-notify',
      enableOfflineQueue: true,
      autoResubscribe: false,
      maxRetriesPerRequest: null,
      commandTimeout: undefined,
    };
    const listener =
      this.redis instanceof Cluster
        ? this.redis.duplicate(undefined, {
            redisOptions: { ...this.redis.options.redisOptions, ...options },
          })
        : this.redis.duplicate(options);
    this.listener = listener;
    listener.on('error', () => {});
    listener.on('message', (from: string) => {
      if (from === channel) this.conversationsChanged();
    });
    const away = () => {
      this.listening = false;
      this.conversationsChanged();
    };
    listener.on('close', away);
    listener.on('ready', () => {
      away();
      listener.subscribe(channel).then(
        () => {
          if (listener.status !== 'ready') return;
          this.conversationsChanged();
          this.listening = true;
        },
        () => undefined,
      );
    });
  }

  async tryLock(name: string, ttlMs: number): Promise<boolean> {
    const token = `${process.pid}:${randomUUID()}`;
    const [reply] = await this.run([
      ['set', this.key(`lock:${name}`), token, 'PX', Math.max(1, ttlMs), 'NX'],
    ]);
    if (reply !== 'OK') return false;
    this.leases.set(name, token);
    return true;
  }

  async claimOnce(name: string, ttlMs: number): Promise<boolean> {
    const [reply] = await this.run([['set', this.key(`claim:${name}`), '1', 'PX', Math.max(1, ttlMs), 'NX']]);
    return reply === 'OK';
  }

  async unlock(name: string): Promise<void> {
    const token = this.leases.get(name);
    if (token === undefined) return;
    this.leases.delete(name);
    // Only our own lease: once it ran out another process may hold the name.
    await this.run([['mdrUnlock', this.key(`lock:${name}`), token]]);
  }

  async pauseChannel(channel: string, untilMs: number): Promise<void> {
    const ttl = Math.ceil(untilMs - Date.now());
    if (ttl <= 0) return;
    await this.run([['mdrPause', this.key(`pause:${channel}`), Math.ceil(untilMs), ttl]]);
  }

  async channelPausedUntil(channel: string): Promise<number> {
    const [value] = (await this.run([['get', this.key(`pause:${channel}`)]])) as [string | null];
    return pausedUntil(value);
  }

  async channelsPausedUntil(channels: readonly string[]): Promise<number[]> {
    if (channels.length === 0) return [];
    const keys = channels.map((channel) => this.key(`pause:${channel}`));
    // One MGET on one server; a GET each on a cluster, where the keys live in different slots.
    const values = (
      this.redis instanceof Cluster
        ? await this.run(keys.map((key): Command => ['get', key]))
        : ((await this.run([['mget', ...keys]]))[0] as unknown[])
    ) as (string | null)[];
    return values.map(pausedUntil);
  }

  async getCursor(name: string): Promise<string | null> {
    const [value] = (await this.run([['get', this.key(`cursor:${name}`)]])) as [string | null];
    return value;
  }

  async setCursor(name: string, value: string): Promise<void> {
    await this.run([['set', this.key(`cursor:${name}`), value]]);
  }

  async ping(): Promise<void> {
    await this.run([['ping']]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    this.listener?.disconnect();
    if (!this.owned || this.redis.status === 'end') return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private key(name: string): string {
    return `${this.prefix}${name}`;
  }

  /**
   * The run-time exclusion changes. Its hash tag is the policy audit stream's whole name, so both share
   * one slot on Redis Cluster and a change is written with its audit entry in one script.
   */
  private exclusionChangesKey(): string {
    return `${this.key('exclusions')}:{${this.key('audit:policy')}}`;
  }

  /**
   * Reads the changes and (for a store written by an earlier version) the whole list kept before them:
   * one MGET on one server; two GETs on a cluster, where the two keys live in different slots.
   */
  private exclusionReads(): Command[] {
    const keys = [this.exclusionChangesKey(), this.key('exclusions')] as const;
    if (this.redis instanceof Cluster) return keys.map((key): Command => ['get', key]);
    return [['mget', ...keys]];
  }

  /** The changes from the replies of `exclusionReads()`. */
  private parseExclusionChanges(replies: unknown[]): ExclusionChanges {
    const [changes, legacy] = (replies.length === 1 ? replies[0] : replies) as (string | null)[];
    return this.parseExclusions(changes ?? null, legacy ?? null);
  }

  private parseExclusions(changes: string | null, legacy: string | null): ExclusionChanges {
    if (changes !== null) return JSON.parse(changes) as ExclusionChanges;
    if (legacy !== null) return { ...structuredClone(NO_CHANGES), legacy: JSON.parse(legacy) as Exclusions };
    return structuredClone(NO_CHANGES);
  }

  private rememberOrder(incidentId: string, order: string[]): void {
    this.orders.delete(incidentId);
    this.orders.set(incidentId, order);
    if (this.orders.size > ORDERS_KEPT) this.orders.delete(this.orders.keys().next().value as string);
  }

  private incidentKeys(incidentId: string) {
    const tag = `${this.prefix}{inc:${incidentId}}`;
    return {
      meta: `${tag}:meta`,
      actions: `${tag}:actions`,
      order: `${tag}:order`,
      audit: `${tag}:audit`,
      cards: `${tag}:cards`,
    };
  }

  private auditCommand(entry: AuditEntry): Command {
    const stream =
      entry.incidentId === undefined ? this.key('audit:policy') : this.incidentKeys(entry.incidentId).audit;
    return ['xadd', stream, 'MAXLEN', '~', this.auditMaxLen, '*', 'e', JSON.stringify(entry)];
  }

  /** The audit feed's line for an entry (every incident's and the policy's, in one stream), with the facts of its write. */
  private feedCommand(entry: AuditEntry, written = ''): Command {
    const line: Command = [
      'xadd',
      this.key(FEED),
      'MAXLEN',
      '~',
      this.auditFeedMaxLen,
      '*',
      'e',
      JSON.stringify(entry),
    ];
    return written === '' ? line : [...line, 'w', written];
  }

  /**
   * Task index writes that follow an action write. They only ever add: a writer that lost its race may
   * add a stale entry, which `collectTasks` hides and later drops; removing here could hide a real task.
   */
  private indexCommands(action: ActionRecord, before?: ActionRecord): Command[] {
    const commands: Command[] = [];
    const task = taskOf(action);
    // An entry the write of `before` made already (the same task, the same phase and submission) is
    // not written again: a progress write in the same phase costs no index command.
    const taskBefore = before ? taskOf(before) : null;
    const sameTask = task && taskBefore?.id === task.id && taskBefore.state === task.state;
    if (task && !sameTask)
      commands.push(['zadd', this.key(`tasks:${task.state}`), 'NX', this.nextScore(), task.id]);
    const phase = phaseOf(action);
    if (phase && before && phaseOf(before) === phase && before.submittedAt === action.submittedAt) {
      return commands;
    }
    if (phase === 'submitted') {
      // Scored by the submission (the follower's back-off counts from it): a later submission of the
      // same action (a retry) moves the entry, a write about the same one leaves it.
      const at = Date.parse(action.submittedAt ?? '');
      const score = Number.isFinite(at) ? at * 1_000 : this.nextScore();
      commands.push([
        'zadd',
        this.key('exec:submitted'),
        'GT',
        score,
        taskIdOf(action.incidentId, action.id),
      ]);
    } else if (phase) {
      const member = taskIdOf(action.incidentId, action.id);
      commands.push(['zadd', this.key(`exec:${phase}`), 'NX', this.nextScore(), member]);
    }
    return commands;
  }

  /** Creation order across processes: microseconds, strictly increasing within this process. */
  private nextScore(): number {
    this.lastScore = Math.max(Date.now() * 1_000, this.lastScore + 1);
    return this.lastScore;
  }

  /** Reads one task index in order, checks each entry against its action, repairs what is stale. */
  private async collectTasks(status: TaskStatus, limit: number): Promise<Task[]> {
    const tasks: Task[] = [];
    await this.sweepIndex(
      this.key(`tasks:${status}`),
      () => tasks.length < limit,
      (member, action) => {
        const task = action ? taskOf(action) : null;
        if (task && task.state === status && task.id === member) {
          if (tasks.length < limit) tasks.push(task);
          return 'keep';
        }
        if (action && MAY_BECOME[status].includes(action.state)) return 'keep';
        return action && task && task.state !== status ? this.indexCommands(action) : [];
      },
    );
    return tasks;
  }

  /**
   * Reads an index of action ids (`<incidentId>:<actionId>`) in order, a page at a time while `more()`,
   * handing `visit` each entry with its action as stored now (null when gone). An entry `visit` does not
   * keep is removed from the index, with the repairs it returns, in one round trip a page.
   */
  private async sweepIndex(
    index: string,
    more: () => boolean,
    visit: (member: string, action: ActionRecord | null) => 'keep' | Command[],
  ): Promise<void> {
    const page = 200;
    for (let start = 0; more(); start += page) {
      const [members] = (await this.run([['zrange', index, start, start + page - 1]])) as [string[]];
      if (members.length === 0) break;
      const removed = await this.checkEntries(index, members, visit);
      if (members.length < page) break;
      start -= removed;
    }
  }

  /**
   * Hands `visit` each of these entries of an index with its action as stored now (one round trip), then
   * removes the entries it does not keep, with the repairs it returns (one more). Returns how many went.
   */
  private async checkEntries(
    index: string,
    members: string[],
    visit: (member: string, action: ActionRecord | null) => 'keep' | Command[],
  ): Promise<number> {
    if (members.length === 0) return 0;
    const refs = members.map((id) => parseTaskId(id));
    const jsons = (await this.run(
      refs.map((ref) =>
        ref ? ['hget', this.incidentKeys(ref.incidentId).actions, ref.actionId] : ['echo', ''],
      ),
    )) as (string | null)[];
    const repairs: Command[] = [];
    let removed = 0;
    members.forEach((member, i) => {
      const json = jsons[i];
      const verdict = visit(member, json ? (JSON.parse(json) as ActionRecord) : null);
      if (verdict === 'keep') return;
      repairs.push(...verdict, ['zrem', index, member]);
      removed += 1;
    });
    if (repairs.length > 0) await this.run(repairs);
    return removed;
  }

  /**
   * Sends commands in one round trip: a pipeline (or MULTI when `atomic`) on one server; on a cluster,
   * where a pipeline must stay on one node, all at once so they travel in parallel. Returns the replies
   * and turns every failure to reach Redis into StoreUnavailableError.
   */
  private async run(commands: Command[], options: { atomic?: boolean } = {}): Promise<unknown[]> {
    try {
      await waitUntilReady(this.redis, this.readyTimeoutMs);
      if (commands.length === 1 && commands[0]) return [await this.send(commands[0])];
      // Not atomic: each command goes through the connection's auto-pipelining, so the commands of
      // every caller in the same tick (a burst of ingests and deliveries) leave in one socket write, in
      // the order issued; an explicit pipeline would be a write of its own per caller.
      if (!options.atomic || this.redis instanceof Cluster) {
        return await Promise.all(commands.map((c) => this.send(c)));
      }
      const replies = await this.redis.multi(commands).exec();
      if (!replies) throw new StoreUnavailableError('the Redis transaction was discarded');
      return replies.map(([error, value]) => {
        if (error) throw error;
        return value;
      });
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }

  private send([name, ...args]: Command): Promise<unknown> {
    const client = this.redis as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>;
    const scripted = client[name];
    if (name.startsWith('mdr') && scripted) return scripted.apply(this.redis, args);
    return this.redis.call(name, ...args);
  }
}

/** A pause's stored end (epoch ms) when it is still ahead, else 0. */
function pausedUntil(value: string | null): number {
  const until = Number(value ?? 0);
  return Number.isFinite(until) && until > Date.now() ? until : 0;
}

/**
 * The visit of a phase index's entries: collects up to `limit` actions in `phase` into `found`, keeps the
 * entries whose action may still get there, drops the others.
 */
function inPhase(phase: ExecutionPhase, found: ActionRecord[], limit: number) {
  return (_member: string, action: ActionRecord | null): 'keep' | Command[] => {
    if (action && phaseOf(action) === phase) {
      if (found.length < limit) found.push(action);
      return 'keep';
    }
    if (action && mayEnter(action, phase)) return 'keep';
    return [];
  };
}
