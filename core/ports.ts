import type {
  ActionRecord,
  AuditEntry,
  CardRefs,
  Exclusions,
  IncidentRecord,
  IncidentState,
  Task,
} from './model.js';

/** Result of a compare-and-set: the winner gets `ok`, the loser sees what is there now. */
export type CasResult = { ok: true; action: ActionRecord } | { ok: false; current: ActionRecord | null };

/**
 * Where incidents, actions, tasks, card references and the audit trail live.
 * Implementations: in-memory (local mode) and Redis (durable, shared by replicas).
 * Every method throws `StoreUnavailableError` when the backend cannot be reached.
 */
export interface ActionStore {
  /**
   * Create or update an incident. Actions whose id is already known are left untouched (their state is
   * kept); the others are added. Returns the actions really added. Atomic with its audit entries.
   */
  upsertIncident(
    incident: IncidentRecord,
    actions: ActionRecord[],
    audit: AuditEntry[],
  ): Promise<{ created: boolean; added: ActionRecord[] }>;
  getIncident(incidentId: string): Promise<IncidentState | null>;
  /** Most recently received first. */
  listIncidents(limit: number): Promise<IncidentRecord[]>;
  getAction(incidentId: string, actionId: string): Promise<ActionRecord | null>;
  /** One read (one round trip on Redis) of what a decision needs: incident, action, run-time exclusions. */
  loadForDecision(
    incidentId: string,
    actionId: string,
  ): Promise<{ incident: IncidentRecord; action: ActionRecord; exclusions: Exclusions | null } | null>;
  /**
   * Write `next` only if the stored action still has `expectedVersion`; the audit entry is written in the
   * same atomic step. `next.version` must be `expectedVersion + 1`. Keeps the task index in step with
   * `next.state` (customerPending: pending task; doneByCustomer: done task).
   */
  compareAndSet(next: ActionRecord, expectedVersion: number, audit: AuditEntry): Promise<CasResult>;
  /** Record a decision that changed nothing (a refusal). */
  appendAudit(entry: AuditEntry): Promise<void>;
  /** Audit entries of one incident, oldest first; without an incident id, the policy audit trail. */
  listAudit(incidentId?: string, limit?: number): Promise<AuditEntry[]>;
  /** Customer tasks in creation order, oldest first. */
  listTasks(status: 'pending' | 'done', limit?: number): Promise<Task[]>;
  /** Exclusions changed at run time (chat or API); null until changed, then the policy file's are replaced. */
  getExclusions(): Promise<Exclusions | null>;
  setExclusions(exclusions: Exclusions, audit: AuditEntry): Promise<void>;
  getCardRefs(incidentId: string): Promise<CardRefs>;
  /** Write the platforms named in `refs` only (Slack and Teams deliveries run apart and never clobber each other). */
  setCardRefs(incidentId: string, refs: CardRefs): Promise<void>;
  /** Teams conversation references captured on install, keyed by conversation id. */
  saveConversation(conversationId: string, reference: unknown): Promise<void>;
  removeConversation(conversationId: string): Promise<void>;
  listConversations(): Promise<{ conversationId: string; reference: unknown }[]>;
  /**
   * Take a short lease named `name` (e.g. posting one incident's card); false when someone else holds it.
   * Released by `unlock` or when `ttlMs` runs out.
   */
  tryLock(name: string, ttlMs: number): Promise<boolean>;
  unlock(name: string): Promise<void>;
  /** Throws StoreUnavailableError when the backend does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Facts about a device needed by device-group and tag exclusions. */
export interface DeviceFacts {
  id: string;
  dnsName?: string;
  group?: string;
  tags: string[];
}

/** The groups a user belongs to (transitively), by id and display name. */
export interface UserGroups {
  ids: string[];
  names: string[];
}

/**
 * Where group facts come from (evidence, Defender, Graph). A fact that cannot be had throws
 * `AssetLookupError`: callers fail closed.
 */
export interface AssetDirectory {
  deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts>;
  userGroups(user: { userId?: string; upn?: string }, incident: IncidentRecord): Promise<UserGroups>;
}

/** What happened when an action was carried out. */
export type ExecutionOutcome = { ok: true; detail: string } | { ok: false; reason: string };

export interface ExecutionContext {
  incident: IncidentRecord;
  approvedBy: string;
  /** Show progress on the card ("Defender: InProgress"). */
  progress(message: string): Promise<void>;
  /** Remember the remote operation id so a restarted worker resumes it instead of sending again. */
  checkpoint(externalId: string): Promise<void>;
}

/** Carries an approved action out against Defender / Graph (or records it, in dry-run). */
export interface ResponseExecutor {
  /** True when nothing is really called: cards say so. */
  readonly dryRun: boolean;
  execute(action: ActionRecord, context: ExecutionContext): Promise<ExecutionOutcome>;
}

export interface Clock {
  now(): Date;
}

/** Publishes a card update for an incident on every configured platform (coalesced by the adapter). */
export interface Notifier {
  incidentChanged(incidentId: string): Promise<void>;
  /** A customer task is still pending past its reminder time. */
  taskOverdue(task: Task): Promise<void>;
}

/** Durable background work the core asks for. Same job twice runs once. */
export type CoreJob =
  | {
      kind: 'execute';
      incidentId: string;
      actionId: string;
      /** Set when re-scheduling an approval whose job was lost: the action version it was found at. */
      recoveryOf?: number;
    }
  | { kind: 'remind'; incidentId: string; actionId: string; dueAt: string };

export interface JobScheduler {
  schedule(job: CoreJob): Promise<void>;
}

/** Everything the use cases need, injected. */
export interface CoreDeps {
  store: ActionStore;
  directory: AssetDirectory;
  executor: ResponseExecutor;
  clock: Clock;
  notifier: Notifier;
  jobs: JobScheduler;
  policy: PolicyView;
  /** What ingest accepts beyond the body's shape (from the configuration); unset: any tenant. */
  ingest?: IngestRules;
}

/** Ingest rules set by the configuration: the core never reads it itself. */
export interface IngestRules {
  /** The Entra tenant incidents must belong to (DEFENDER_TENANT_ID); others are refused. */
  tenantId?: string;
  /** Hosts allowed for an incident's portal link besides the Defender portal's (PUBLIC_URL's). */
  portalHosts?: readonly string[];
}

/** The parts of the policy file the core reads at decision time. */
export interface PolicyView {
  roles: { experts: string[]; admins: string[] };
  /** Exclusions from the policy file; the store's copy wins once changed at run time. */
  exclusions: Exclusions;
  reminders: { pendingTaskHours: number };
}
