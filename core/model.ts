import type { ActionState, ActionType, ScanType } from './actions.js';

/** An identity as the policy names it: `slack:U0EXPERT1`, `teams:<aadObjectId>`, `api:<name>`, `system`. */
export type Identity = string;

/** Where a decision was made. */
export type Platform = 'slack' | 'teams' | 'api' | 'preview' | 'system';

export type Severity = 'unknown' | 'informational' | 'low' | 'medium' | 'high';

/** What an action is aimed at, as the ingest body names it. Only the fields of its kind are set. */
export interface ActionTarget {
  deviceId?: string;
  deviceName?: string;
  sha1?: string;
  fileName?: string;
  userId?: string;
  upn?: string;
  networkMessageId?: string;
  recipient?: string;
}

/** A device seen in the incident's evidence. */
export interface DeviceAsset {
  id: string;
  dnsName?: string;
  group?: string;
  tags: string[];
}

/** A user seen in the incident's evidence. */
export interface UserAsset {
  id?: string;
  upn?: string;
  displayName?: string;
}

export interface FileAsset {
  sha1?: string;
  sha256?: string;
  name?: string;
  path?: string;
  deviceId?: string;
}

export interface MessageAsset {
  networkMessageId: string;
  subject?: string;
  recipient?: string;
  sender?: string;
}

/** The incident as the bot keeps it: Graph facts plus the managed-response summary. */
export interface IncidentRecord {
  id: string;
  tenantId?: string;
  title: string;
  severity: Severity;
  status: string;
  portalUrl: string;
  summary: string;
  createdAt: string;
  updatedAt: string;
  /** When the bot first received it. */
  receivedAt: string;
  devices: DeviceAsset[];
  users: UserAsset[];
  files: FileAsset[];
  messages: MessageAsset[];
}

/** One managed-response action and its live state. */
export interface ActionRecord extends TaskClosure {
  incidentId: string;
  id: string;
  type: ActionType;
  target: ActionTarget;
  reason?: string;
  state: ActionState;
  /** The exclusion rule that made this a customer task ("device group Domain Controllers"). */
  excludedBy: string | null;
  /** Who made the last decision (approve, reject, done). */
  decidedBy: Identity | null;
  /**
   * The decider's name as their platform gave it at decision time (Teams `from.name`), for cards only:
   * the audit trail and every permission check use `decidedBy`.
   */
  decidedByName?: string;
  decidedAt?: string;
  /**
   * Set when a customer admin had the bot carry out their own task (`customerPending → approved`): the
   * run is the customer's decision, so the exclusions (which bind the experts) do not stop it; the
   * target is still resolved live and acted on as resolved. Cleared when an expert decides again.
   */
  decidedAs?: 'customer';
  createdAt: string;
  updatedAt: string;
  /** Progress while executing ("Defender: InProgress"). */
  progress?: string;
  /** Outcome text once succeeded. */
  result?: string;
  /** Failure reason once failed. */
  error?: string;
  /**
   * Which run of the action this is: unset for the first, 2 after an expert's first retry, and so on.
   * A retried action's execution job is named by its approved version so it never shares the id of
   * an earlier run's job.
   */
  attempt?: number;
  /** The failure that made an expert hand the action to the customer: the task's guidance says it. */
  handoverReason?: string;
  /** Why the expert may not act right now (exclusion could not be verified). */
  blockedReason?: string;
  /**
   * The identity the execute-time exclusion check resolved the target to (Entra object id, Defender
   * machine id): the executor acts on it, never on another name from the ingest body.
   */
  resolved?: { userId?: string; deviceId?: string };
  /**
   * Id of the remote operation (MDE machine action): once set, the action is followed by its id and never
   * sent again.
   */
  externalId?: string;
  /**
   * The items the remote operation acts on, when it is followed item by item (the analyzed email ids
   * of a soft delete): recorded with `externalId`.
   */
  remoteItems?: string[];
  /**
   * When the action moved to `executing` (kept through takeovers): no remote operation of it can be
   * older, so an earlier one with the same ids is never adopted.
   */
  executingSince?: string;
  /** When the remote operation was submitted or adopted: bounds how long it is followed. */
  submittedAt?: string;
  /** The remote operation's last status seen ("InProgress"). */
  remoteStatus?: string;
  /**
   * Set while `executing` by the one job run allowed to send the request (the approved→executing
   * compare-and-set writes it; a takeover swaps it). Unset: nobody holds the action (rate-limited, waiting
   * for its delayed job).
   */
  executionToken?: string;
  /** When the holder of `executionToken` took or last renewed it; older than the lease bound: stale. */
  leaseAt?: string;
  /** Released with no request sent (rate-limited before sending): the next run need not look for one. */
  unsent?: boolean;
  /** Set while the action is executed by the dry-run executor. */
  dryRun?: boolean;
  /** The antivirus scan the approving expert chose (`runAntivirusScan` only); unset means Quick. */
  scanType?: ScanType;
  /** Bumped on every write; the store's compare-and-set checks it. */
  version: number;
}

/** An incident with its actions, as read back from the store. */
export interface IncidentState {
  incident: IncidentRecord;
  actions: ActionRecord[];
}

/** One line of the audit trail: every decision, including refusals. */
export interface AuditEntry {
  at: string;
  incidentId?: string;
  actionId?: string;
  actor: Identity;
  platform: Platform;
  /** What was attempted: ingest, approve, reject, execute, markDone, exclude, ... */
  event: string;
  outcome: 'ok' | 'refused' | 'failed';
  /** The new state, the refusal code or the failure reason. */
  detail: string;
}

/** Exclusion rules (the `exclusions` object of the policy file). */
export type DeviceRule = { id: string } | { name: string } | { group: string } | { tag: string };
export type UserRule = { upn: string } | { id: string } | { group: string };

export interface Exclusions {
  devices: DeviceRule[];
  users: UserRule[];
}

/** One rule added or removed at run time, with who changed it and when. */
export interface RuleChange<R> {
  rule: R;
  by: Identity;
  at: string;
}

/**
 * Exclusions changed at run time, kept as additions and removals against the policy file: the rules in
 * force are (file ∪ added) − removed. `version` is 0 until the first change and bumped by each one.
 */
export interface ExclusionChanges {
  version: number;
  added: { devices: RuleChange<DeviceRule>[]; users: RuleChange<UserRule>[] };
  removed: { devices: RuleChange<DeviceRule>[]; users: RuleChange<UserRule>[] };
  /**
   * The whole list an earlier version of the bot stored in place of the policy file's (version 0 only):
   * read as additions and removals, and replaced by them at the first change.
   */
  legacy?: Exclusions;
}

/** A rule in force and where it comes from: `policy file`, `added by slack:U0ADMIN1 at 2026-…`. */
export type SourcedRule<R> = R & { source: string };

/** The rules in force, each with its source; the `exclusions` object of the policy shape plus `source`. */
export interface ExclusionsInForce {
  devices: SourcedRule<DeviceRule>[];
  users: SourcedRule<UserRule>[];
}

export interface Roles {
  experts: Identity[];
  admins: Identity[];
}

/** How a task was closed: done, by whom and when, or skipped by the customer's team, and why. */
export interface TaskClosure {
  doneBy?: Identity;
  /**
   * The name of `doneBy` as their platform gave it: shown on cards and in chat answers, never used to
   * decide anything (see `decidedByName`).
   */
  doneByName?: string;
  doneAt?: string;
  /** Who closed the customer task without doing it (`skippedByCustomer`), when, and why. */
  skippedBy?: Identity;
  /** The name of `skippedBy` as their platform gave it, shown only (see `doneByName`). */
  skippedByName?: string;
  skippedAt?: string;
  skipReason?: string;
}

/** A pending customer task, as the REST API and chat commands show it. */
export interface Task extends TaskClosure {
  id: string;
  incidentId: string;
  actionId: string;
  type: ActionType;
  target: ActionTarget;
  state: 'pending' | 'done';
  excludedBy: string | null;
  guidance: string;
  createdAt: string;
}

/** Where an incident's card was posted on each platform. */
export interface CardRefs {
  slack?: { channel: string; ts: string };
  teams?: { conversationId: string; activityId: string }[];
}
