import type {
  ActionRecord,
  AuditEntry,
  CardRefs,
  ExclusionChanges,
  Exclusions,
  IncidentRecord,
  IncidentState,
  Task,
} from './model.js';

/**
 * Where an action stands in its execution: `approved` (waiting for its job), `starting` (executing, no
 * remote operation yet), `submitted` (executing, followed by its remote operation id).
 */
export type ExecutionPhase = 'approved' | 'starting' | 'submitted';

/**
 * Whether a phase index entry is due (e.g. for a check), from when its action entered the phase (epoch
 * ms; for `submitted`, when its remote operation was submitted).
 */
export type EntryDue = (enteredMs: number) => boolean;

/** One line of the audit feed: the entry and the cursor that resumes after it. */
export interface AuditFeedEntry {
  cursor: string;
  entry: AuditEntry;
  /** On the line of an action write (a transition, or the first line of an ingest that added actions). */
  written?: ActionsWritten;
}

/**
 * What one write did to an incident's actions, stored with its audit feed line in the same step (the
 * outbox webhooks are relayed from): each action written, with its state before (null: created), and
 * every action of the incident right after the write (empty for a write that is neither an event nor
 * one that may resolve the incident: `factsNeedActions`).
 */
export interface ActionsWritten {
  changed: { before: ActionRecord['state'] | null; after: ActionRecord }[];
  actions: Pick<ActionRecord, 'id' | 'version' | 'state'>[];
}

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
  /** One read (one round trip on Redis) of what a decision needs: incident, action, run-time exclusion changes. */
  loadForDecision(
    incidentId: string,
    actionId: string,
  ): Promise<{ incident: IncidentRecord; action: ActionRecord; exclusionChanges: ExclusionChanges } | null>;
  /**
   * Write `next` only if the stored action still has `expectedVersion`; the audit entry is written in the
   * same atomic step. `next.version` must be `expectedVersion + 1`. Keeps the task index in step with
   * `next.state` (customerPending: pending task; doneByCustomer: done task). `before`: the action as read
   * at `expectedVersion`, whose index entries (its task, its phase) need not be written again.
   */
  compareAndSet(
    next: ActionRecord,
    expectedVersion: number,
    audit: AuditEntry,
    before?: ActionRecord,
  ): Promise<CasResult>;
  /** Record a decision that changed nothing (a refusal). */
  appendAudit(entry: AuditEntry): Promise<void>;
  /** Audit entries of one incident, oldest first; without an incident id, the policy audit trail. */
  listAudit(incidentId?: string, limit?: number): Promise<AuditEntry[]>;
  /**
   * Every audit entry (all incidents and the policy trail) in the order written, oldest first, after the
   * cursor `since` (null: from the oldest kept). Cursors look like `1712345678901-0`; the feed keeps the
   * latest entries only (the store's bound), so a cursor older than the oldest kept starts there.
   */
  listAuditFeed(since: string | null, limit: number): Promise<AuditFeedEntry[]>;
  /**
   * Whether entries after the cursor `since` may have been dropped before they were read: some entries
   * were dropped (the bound) and `since` is older than the oldest entry kept.
   */
  auditFeedGap(since: string): Promise<boolean>;
  /** Customer tasks in creation order, oldest first. */
  listTasks(status: 'pending' | 'done', limit?: number): Promise<Task[]>;
  /**
   * Actions in one phase of their execution (see `phaseOf`), first indexed first. The index is kept by
   * `compareAndSet` and checked against each action on read (entries that can no longer match are
   * dropped), so it never shows an action in a phase it is not in.
   */
  listActionsIn(phase: ExecutionPhase, limit?: number): Promise<ActionRecord[]>;
  /**
   * A window of at most `size` entries of a phase index, from entry `from` (modulo the index's length,
   * wrapping around), read and checked as `listActionsIn` does: only the window's actions are read.
   * With `due`, an index that fits in one window gives only its entries due (see `chooseEntries`).
   * `total`: the entries in the index before the window was checked (stale ones included).
   */
  sliceActionsIn(
    phase: ExecutionPhase,
    size: number,
    from: number,
    due?: EntryDue,
  ): Promise<{ total: number; actions: ActionRecord[] }>;
  /** Exclusion rules added and removed at run time (chat or API); version 0 and empty until changed. */
  getExclusionChanges(): Promise<ExclusionChanges>;
  /**
   * Write `next` only if the stored changes still have `expectedVersion` (0: never changed); the audit
   * entry is written in the same atomic step. Stores `next` with version `expectedVersion + 1` and
   * without `legacy`. False when someone else changed them first: read again and retry.
   */
  saveExclusionChanges(next: ExclusionChanges, expectedVersion: number, audit: AuditEntry): Promise<boolean>;
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
  /**
   * Take `name` for `ttlMs` unless someone has (e.g. one interval of a periodic round, run by the one
   * process that took it): true for that one taker. Never released: it runs out.
   */
  claimOnce(name: string, ttlMs: number): Promise<boolean>;
  /** Deliveries to `channel` (a platform's channel or conversation) wait until `untilMs`, in every process. */
  pauseChannel(channel: string, untilMs: number): Promise<void>;
  /** Until when deliveries to `channel` wait (epoch ms); 0 when they need not. */
  channelPausedUntil(channel: string): Promise<number>;
  /** `channelPausedUntil` of each channel, in order, read at once. */
  channelsPausedUntil(channels: readonly string[]): Promise<number[]>;
  /** A named position kept across restarts and replicas (e.g. how far the Graph poll has read); null if never set. */
  getCursor(name: string): Promise<string | null>;
  setCursor(name: string, value: string): Promise<void>;
  /** Throws StoreUnavailableError when the backend does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A device as Defender reports it: exclusion rules are matched against these facts only. */
export interface DeviceFacts {
  id: string;
  dnsName?: string;
  group?: string;
  tags: string[];
}

/** A user as Microsoft Entra ID reports it, with every identifier a user rule may name. */
export interface DirectoryUser {
  /** Entra object id: the identity actions are carried out on. */
  id: string;
  userPrincipalName: string;
  mail?: string;
  /** As Graph returns them (`SMTP:primary@…`, `smtp:alias@…`). */
  proxyAddresses: string[];
  onPremisesSyncEnabled?: boolean;
}

/** How an action names a user: by object id, by UPN, or by a mail address (a soft-delete recipient). */
export type UserReference = { userId: string } | { upn: string } | { address: string };

/**
 * Where the facts behind exclusion decisions come from (Defender, Graph; the evidence in local mode).
 * Every call reads the facts live: no cache may answer a decision. A fact that cannot be had throws
 * `AssetLookupError`: callers fail closed.
 */
export interface AssetDirectory {
  /** The device as Defender reports it, looked up by id, else by DNS name (exactly one match). */
  deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts>;
  /** The one user a reference names; none or several is an `AssetLookupError`. */
  resolveUser(user: UserReference, incident: IncidentRecord): Promise<DirectoryUser>;
  /**
   * Of `groups` (display names or object ids, as policy rules name them), those the user is a
   * transitive member of, as given. A name that matches no group or several is an `AssetLookupError`.
   */
  memberOfGroups(user: DirectoryUser, groups: string[]): Promise<string[]>;
}

/** What happened when an action was carried out. */
export type ExecutionOutcome = { ok: true; detail: string } | { ok: false; reason: string };

/** What submitting an approved action led to. */
export type SubmitResult =
  /** Done at once (Graph user actions, dry run) or refused: the action ends with this outcome. */
  | { kind: 'finished'; outcome: ExecutionOutcome; externalId?: string }
  /**
   * A remote operation runs (an MDE machine action sent or adopted, an email remediation): it is
   * followed by its id and, when given, the `items` it acts on.
   */
  | { kind: 'submitted'; externalId: string; status: string; progress: string; items?: string[] }
  /**
   * Not sent now: a rate limit is in the way; try again after `retryAfterMs`. `maybeSent`: an earlier
   * attempt of this run may have reached the service, so the next run looks for it before sending.
   */
  | { kind: 'throttled'; retryAfterMs: number; reason: string; maybeSent?: boolean }
  /** Nothing was sent: another run holds the action now. */
  | { kind: 'abandoned'; reason: string };

/** The remote status of a submitted action, as one follow-up round found it. */
export type RemoteCheck =
  | { kind: 'running'; status: string; progress: string }
  | { kind: 'finished'; outcome: ExecutionOutcome }
  /** Not known this round (throttled, a passing fault): asked again next round. */
  | { kind: 'unknown'; reason: string };

export interface SubmitContext {
  incident: IncidentRecord;
  approvedBy: string;
  /**
   * An earlier run may have sent the request before it stopped: the executor looks for the remote
   * operation (and adopts it) before sending anything.
   */
  resume: boolean;
  /**
   * Confirm, right before a request that must go once, that this run still holds the action (renewing
   * its lease when needed). False: another run took it over, so nothing may be sent.
   */
  claim(): Promise<boolean>;
}

/** Carries an approved action out against Defender / Graph (or records it, in dry-run). */
export interface ResponseExecutor {
  /** True when nothing is really called: cards say so. */
  readonly dryRun: boolean;
  /** Send (or adopt) the request of an `executing` action; never waits for a remote operation to end. */
  submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult>;
  /** The remote status of submitted actions (each has `externalId`), one result per action, in order. */
  check(actions: ActionRecord[]): Promise<RemoteCheck[]>;
}

export interface Clock {
  now(): Date;
}

/** Publishes a card update for an incident on every configured platform (coalesced by the adapter). */
export interface Notifier {
  /** `change.created`: the incident is new, so its card is posted at once (later changes may be gathered). */
  incidentChanged(incidentId: string, change?: { created?: boolean }): Promise<void>;
  /** A customer task is still pending past its reminder time. */
  taskOverdue(task: Task): Promise<void>;
}

/** Durable background work the core asks for. Same job twice runs once. */
export type CoreJob =
  | {
      kind: 'execute';
      incidentId: string;
      actionId: string;
      /**
       * A later run of an action already `executing` (rate-limited, or its holder stopped), or the run of
       * an action an expert retried after a failure: the action version it is for, so it has a job of its
       * own beside the earlier ones (whose ids the queue still knows).
       */
      retry?: number;
      /** Run no sooner than this many milliseconds from now. */
      delayMs?: number;
      /** The job of this id ran and finished without the action moving on: run it again. */
      rerun?: boolean;
    }
  | { kind: 'remind'; incidentId: string; actionId: string; dueAt: string }
  /** One notification email about an incident's customer tasks; `event` names it (a batch of new tasks `tasks-<id>@<version>+…`, `reminder-<dueAt>`). */
  | { kind: 'email'; incidentId: string; event: string };

export interface JobScheduler {
  schedule(job: CoreJob): Promise<void>;
  /**
   * True while a job for this work waits, is delayed or runs (false once it finished, or if never
   * added). A scheduler that cannot tell leaves it out: recovery then re-adds without replacing.
   */
  scheduled?(job: CoreJob): Promise<boolean>;
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
  /** Sends notification email (MAIL_SENDER, or the preview in local mode); unset: no email. */
  mailer?: Mailer;
  /** Told of facts once the store has them (webhooks); unset: nobody is told. */
  events?: DomainEvents;
}

/**
 * Told of action writes right after the store accepted them, by the writer that won: each write once.
 * Implementations never throw for a delivery problem (the decision is already made).
 */
export interface DomainEvents {
  /** An action changed state (`transition`). */
  actionMoved(before: ActionRecord, after: ActionRecord): Promise<void>;
  /** Ingest added `added` to the incident; `state` is the incident as this ingest left it. */
  actionsAdded(state: IncidentState, added: ActionRecord[]): Promise<void>;
}

/** A plain-text notification email. */
export interface EmailMessage {
  to: string[];
  subject: string;
  text: string;
}

/** What sending one email came to, retries spent. */
export type MailResult = { ok: true } | { ok: false; reason: string };

/** Sends notification email (Graph `sendMail` as MAIL_SENDER; in local mode, the preview's outbox). */
export interface Mailer {
  /** Sends once, retrying throttling and server faults itself; never throws for a refusal or a fault. */
  send(message: EmailMessage): Promise<MailResult>;
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
  /** Exclusions from the policy file; the store keeps run-time additions and removals against them. */
  exclusions: Exclusions;
  reminders: { pendingTaskHours: number };
  /** Who is emailed about customer tasks; unset or empty: nobody. */
  notifications?: { email?: string[] };
}

/** What the incident source can narrow on its side (Graph `$filter`); tags are matched after. */
export interface IncidentQuery {
  assignedTo?: string;
}

/** One poll's reading of the incident list. */
export interface IncidentBatch {
  incidents: unknown[];
  /** False when a safety bound stopped the reading before the last page. */
  complete: boolean;
  pages: number;
}

/** Where polled incidents come from (Microsoft Graph in production: adapters/graph-incident-source.ts). */
export interface IncidentSource {
  /** Incidents updated at or after `since`; `assignedTo` is narrowed on the source's side. */
  updatedSince(since: Date, query?: IncidentQuery): Promise<IncidentBatch>;
}
