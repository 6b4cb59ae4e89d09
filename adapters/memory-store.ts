import { chooseEntries, EXECUTION_PHASES, phaseOf, windowOf } from '../core/execution-phase.js';
import type {
  ActionRecord,
  AuditEntry,
  CardRefs,
  ExclusionChanges,
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

const clone = <T>(value: T): T => structuredClone(value);

/** The states from which an action may still become a task of each status. */
const MAY_BECOME = { pending: statesBecoming('pending'), done: statesBecoming('done') };

/** A feed cursor as two numbers; null when it is not one (`<ms>-<seq>`). */
function parseCursor(cursor: string): [number, number] | null {
  const match = /^(\d{1,15})-(\d{1,15})$/.exec(cursor);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

function compareCursors(cursor: string, other: [number, number]): number {
  const [ms, seq] = parseCursor(cursor) ?? [0, 0];
  return ms - other[0] || seq - other[1];
}

/** Every action of an incident as a write's facts record them. */
function summaries(actions: Map<string, ActionRecord>): ActionsWritten['actions'] {
  return [...actions.values()].map(({ id, version, state }) => ({ id, version, state }));
}

/** What the store holds before the first run-time change. */
const NO_CHANGES: ExclusionChanges = {
  version: 0,
  added: { devices: [], users: [] },
  removed: { devices: [], users: [] },
};

/**
 * The store of local mode: everything in this process's memory. Single process, not durable.
 * Behaves exactly as the Redis store (the same contract suite runs against both).
 */
export class MemoryStore implements ActionStore {
  /** `feedMaxLen`: how many audit feed lines are kept (the oldest go first). */
  constructor(private readonly feedMaxLen = 10_000) {}

  private readonly incidents = new Map<string, IncidentRecord>();
  private readonly actions = new Map<string, Map<string, ActionRecord>>();
  private readonly audit = new Map<string, AuditEntry[]>();
  private readonly policyAudit: AuditEntry[] = [];
  /** Every audit entry in the order written, with its cursor (`<ms>-<seq>`, as a Redis stream id). */
  private readonly feed: AuditFeedEntry[] = [];
  private feedLast = { ms: 0, seq: 0 };
  /** Whether the bound ever dropped feed lines (a cursor older than the oldest kept then has a gap). */
  private feedDropped = false;
  /** Task id -> creation sequence, per status, to list in creation order. */
  private readonly taskIndex = { pending: new Map<string, number>(), done: new Map<string, number>() };
  private taskSeq = 0;
  /** Actions by execution phase (`incident:action` -> sequence), to list them in the order they entered. */
  /** When each phase index entry's action entered the phase (`phase|incident:action` -> epoch ms). */
  private readonly phaseEntered = new Map<string, number>();
  private readonly phaseIndex: Record<ExecutionPhase, Map<string, number>> = {
    approved: new Map(),
    starting: new Map(),
    submitted: new Map(),
  };
  private exclusionChanges: ExclusionChanges = NO_CHANGES;
  private readonly cards = new Map<string, CardRefs>();
  private readonly conversations = new Map<string, unknown>();

  async upsertIncident(incident: IncidentRecord, actions: ActionRecord[], audit: AuditEntry[]) {
    const created = !this.incidents.has(incident.id);
    this.incidents.set(incident.id, clone(incident));
    const known = this.actions.get(incident.id) ?? new Map<string, ActionRecord>();
    this.actions.set(incident.id, known);
    const added: ActionRecord[] = [];
    for (const action of actions) {
      if (known.has(action.id)) continue;
      known.set(action.id, clone(action));
      this.indexTask(action);
      this.indexPhase(action);
      added.push(clone(action));
    }
    const addedIds = new Set(added.map((a) => a.id));
    // The facts of the ingest go with its first feed line, as the Redis store writes them.
    let written: ActionsWritten | undefined =
      added.length > 0
        ? { changed: added.map((after) => ({ before: null, after })), actions: summaries(known) }
        : undefined;
    for (const entry of audit) {
      if (entry.actionId !== undefined && !addedIds.has(entry.actionId)) continue;
      this.pushAudit(entry, written);
      written = undefined;
    }
    return { created, added };
  }

  async getIncident(incidentId: string): Promise<IncidentState | null> {
    const incident = this.incidents.get(incidentId);
    if (!incident) return null;
    return {
      incident: clone(incident),
      actions: [...(this.actions.get(incidentId)?.values() ?? [])].map(clone),
    };
  }

  async listIncidents(limit: number): Promise<IncidentRecord[]> {
    return [...this.incidents.values()]
      .sort((a, b) => (a.receivedAt < b.receivedAt ? 1 : a.receivedAt > b.receivedAt ? -1 : 0))
      .slice(0, limit)
      .map(clone);
  }

  async getAction(incidentId: string, actionId: string): Promise<ActionRecord | null> {
    const action = this.actions.get(incidentId)?.get(actionId);
    return action ? clone(action) : null;
  }

  async loadForDecision(incidentId: string, actionId: string) {
    const incident = this.incidents.get(incidentId);
    const action = this.actions.get(incidentId)?.get(actionId);
    if (!incident || !action) return null;
    return {
      incident: clone(incident),
      action: clone(action),
      exclusionChanges: clone(this.exclusionChanges),
    };
  }

  async compareAndSet(next: ActionRecord, expectedVersion: number, audit: AuditEntry): Promise<CasResult> {
    const known = this.actions.get(next.incidentId);
    const current = known?.get(next.id);
    if (!known || !current || current.version !== expectedVersion) {
      return { ok: false, current: current ? clone(current) : null };
    }
    const stored = { ...clone(next), version: expectedVersion + 1 };
    known.set(next.id, stored);
    this.indexTask(stored);
    this.indexPhase(stored);
    this.pushAudit(audit, {
      changed: [{ before: current.state, after: clone(stored) }],
      actions: factsNeedActions(stored) ? summaries(known) : [],
    });
    return { ok: true, action: clone(stored) };
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    this.pushAudit(entry);
  }

  async listAudit(incidentId?: string, limit = 1_000): Promise<AuditEntry[]> {
    const list = incidentId === undefined ? this.policyAudit : (this.audit.get(incidentId) ?? []);
    return list.slice(-limit).map(clone);
  }

  async listAuditFeed(since: string | null, limit: number): Promise<AuditFeedEntry[]> {
    const after = since === null ? null : parseCursor(since);
    const start = after === null ? 0 : this.feed.findIndex((f) => compareCursors(f.cursor, after) > 0);
    if (start < 0 || limit <= 0) return [];
    return this.feed.slice(start, start + limit).map(clone);
  }

  async auditFeedGap(since: string): Promise<boolean> {
    const oldest = this.feed[0];
    const after = parseCursor(since);
    return (
      this.feedDropped && oldest !== undefined && after !== null && compareCursors(oldest.cursor, after) > 0
    );
  }

  async listTasks(status: 'pending' | 'done', limit = 500): Promise<Task[]> {
    const ids = [...this.taskIndex[status].entries()].sort((a, b) => a[1] - b[1]).slice(0, limit);
    const tasks: Task[] = [];
    for (const [taskId] of ids) {
      const ref = parseTaskId(taskId);
      const action = ref ? this.actions.get(ref.incidentId)?.get(ref.actionId) : undefined;
      const task = action ? taskOf(action) : null;
      if (task && task.state === status) tasks.push(clone(task));
    }
    return tasks;
  }

  async listActionsIn(phase: ExecutionPhase, limit = 500): Promise<ActionRecord[]> {
    const ids = [...this.phaseIndex[phase].entries()].sort((a, b) => a[1] - b[1]);
    const found: ActionRecord[] = [];
    for (const [key] of ids) {
      if (found.length >= limit) break;
      const ref = parseTaskId(key);
      const action = ref ? this.actions.get(ref.incidentId)?.get(ref.actionId) : undefined;
      if (action && phaseOf(action) === phase) found.push(clone(action));
    }
    return found;
  }

  async sliceActionsIn(phase: ExecutionPhase, size: number, from: number, due?: EntryDue) {
    const ids = [...this.phaseIndex[phase].entries()].sort((a, b) => a[1] - b[1]).map(([key]) => key);
    const chosen = due
      ? chooseEntries(
          ids.map((key) => ({ entry: key, enteredMs: this.phaseEntered.get(`${phase}|${key}`) ?? 0 })),
          size,
          from,
          due,
        )
      : windowOf(ids, size, from);
    const actions: ActionRecord[] = [];
    for (const key of chosen) {
      const ref = parseTaskId(key);
      const action = ref ? this.actions.get(ref.incidentId)?.get(ref.actionId) : undefined;
      if (action && phaseOf(action) === phase) actions.push(clone(action));
    }
    return { total: ids.length, actions };
  }

  async getExclusionChanges(): Promise<ExclusionChanges> {
    return clone(this.exclusionChanges);
  }

  async saveExclusionChanges(
    next: ExclusionChanges,
    expectedVersion: number,
    audit: AuditEntry,
  ): Promise<boolean> {
    if (this.exclusionChanges.version !== expectedVersion) return false;
    const { legacy: _dropped, ...changes } = clone(next);
    this.exclusionChanges = { ...changes, version: expectedVersion + 1 };
    this.pushAudit(audit);
    return true;
  }

  async getCardRefs(incidentId: string): Promise<CardRefs> {
    return clone(this.cards.get(incidentId) ?? {});
  }

  async setCardRefs(incidentId: string, refs: CardRefs): Promise<void> {
    const merged = { ...this.cards.get(incidentId) };
    if (refs.slack) merged.slack = clone(refs.slack);
    if (refs.teams) merged.teams = clone(refs.teams);
    this.cards.set(incidentId, merged);
  }

  async saveConversation(conversationId: string, reference: unknown): Promise<void> {
    this.conversations.set(conversationId, clone(reference));
  }

  async removeConversation(conversationId: string): Promise<void> {
    this.conversations.delete(conversationId);
  }

  async listConversations() {
    return [...this.conversations.entries()].map(([conversationId, reference]) => ({
      conversationId,
      reference: clone(reference),
    }));
  }

  private readonly locks = new Map<string, number>();

  async tryLock(name: string, ttlMs: number): Promise<boolean> {
    const held = this.locks.get(name);
    if (held !== undefined && held > Date.now()) return false;
    this.locks.set(name, Date.now() + ttlMs);
    return true;
  }

  async unlock(name: string): Promise<void> {
    this.locks.delete(name);
  }

  private readonly claims = new Map<string, number>();

  async claimOnce(name: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    // Claims run out and are never released: drop the ended ones so the map stays small.
    for (const [claimed, until] of this.claims) if (until <= now) this.claims.delete(claimed);
    if (this.claims.has(name)) return false;
    this.claims.set(name, now + ttlMs);
    return true;
  }

  private readonly pauses = new Map<string, number>();

  async pauseChannel(channel: string, untilMs: number): Promise<void> {
    if (untilMs > (this.pauses.get(channel) ?? 0)) this.pauses.set(channel, untilMs);
  }

  async channelPausedUntil(channel: string): Promise<number> {
    const until = this.pauses.get(channel) ?? 0;
    if (until > Date.now()) return until;
    this.pauses.delete(channel);
    return 0;
  }

  async channelsPausedUntil(channels: readonly string[]): Promise<number[]> {
    return Promise.all(channels.map((channel) => this.channelPausedUntil(channel)));
  }

  private readonly cursors = new Map<string, string>();

  async getCursor(name: string): Promise<string | null> {
    return this.cursors.get(name) ?? null;
  }

  async setCursor(name: string, value: string): Promise<void> {
    this.cursors.set(name, value);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  private pushAudit(entry: AuditEntry, written?: ActionsWritten): void {
    const ms = Math.max(Date.now(), this.feedLast.ms);
    this.feedLast = { ms, seq: ms === this.feedLast.ms ? this.feedLast.seq + 1 : 0 };
    this.feed.push({
      cursor: `${ms}-${this.feedLast.seq}`,
      entry: clone(entry),
      ...(written ? { written } : {}),
    });
    if (this.feed.length > this.feedMaxLen) {
      this.feed.splice(0, this.feed.length - this.feedMaxLen);
      this.feedDropped = true;
    }
    if (entry.incidentId === undefined) {
      this.policyAudit.push(clone(entry));
      return;
    }
    const list = this.audit.get(entry.incidentId) ?? [];
    list.push(clone(entry));
    this.audit.set(entry.incidentId, list);
  }

  /** Writes here are atomic with the action's: an action is listed in exactly its phase. */
  private indexPhase(action: ActionRecord): void {
    const key = taskIdOf(action.incidentId, action.id);
    const now = phaseOf(action);
    for (const phase of EXECUTION_PHASES) {
      if (phase !== now) {
        this.phaseIndex[phase].delete(key);
        this.phaseEntered.delete(`${phase}|${key}`);
      } else if (!this.phaseIndex[phase].has(key)) {
        this.phaseIndex[phase].set(key, ++this.taskSeq);
        // As the Redis store scores it: a submitted action by the time it was submitted.
        const at = phase === 'submitted' ? Date.parse(action.submittedAt ?? '') : Number.NaN;
        this.phaseEntered.set(`${phase}|${key}`, Number.isFinite(at) ? at : Date.now());
      }
    }
  }

  /** Like the Redis store's: an entry is dropped once its action can no longer be a task of that status. */
  private indexTask(action: ActionRecord): void {
    const id = taskIdOf(action.incidentId, action.id);
    const status = taskOf(action)?.state;
    for (const each of ['pending', 'done'] as const) {
      const index = this.taskIndex[each];
      if (each === status) {
        if (!index.has(id)) index.set(id, ++this.taskSeq);
      } else if (status || !MAY_BECOME[each].includes(action.state)) {
        index.delete(id);
      }
    }
  }
}
