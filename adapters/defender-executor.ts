import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import type { ActionType, ScanType } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type {
  ExecutionOutcome,
  RemoteCheck,
  ResponseExecutor,
  SubmitContext,
  SubmitResult,
} from '../core/ports.js';
import {
  type AdapterLogger,
  ApiClient,
  apiError,
  describeFailure,
  type HttpResult,
  type RetryOptions,
  retryAfterMs,
} from './defender-http.js';
import { DefenderPacer, type SubmissionPacer } from './defender-pacer.js';

/** Options of `DefenderExecutor`. */
export interface DefenderExecutorOptions extends RetryOptions {
  credential: TokenCredential;
  /** `DEFENDER_API_URL`, may carry a path prefix. */
  defenderApiUrl: string;
  /** `GRAPH_API_URL`, may carry a path prefix. */
  graphApiUrl: string;
  /**
   * Longest wait for a machine action or an email remediation to finish before the outcome is a failure
   * (default 10 min).
   */
  maxPollMs?: number;
  /**
   * Paces machine-action requests to Defender's limits across replicas (default: this process alone,
   * 100 a minute and 1,500 an hour).
   */
  pacer?: SubmissionPacer;
  /** How far back to look for the analyzed email of `softDeleteEmails` (default 30 days). */
  emailSearchDays?: number;
  /** Injectable for tests (poll deadline and email search window). */
  now?: () => number;
  logger?: AdapterLogger;
}

type MdeActionType = Extract<
  ActionType,
  | 'isolateDevice'
  | 'releaseDeviceFromIsolation'
  | 'runAntivirusScan'
  | 'stopAndQuarantineFile'
  | 'restrictAppExecution'
  | 'removeAppRestriction'
>;

interface MdeSpec {
  /** Path segment after `/api/machines/{id}/` (case as documented). */
  path: string;
  /** MachineAction `type` Defender reports for it. */
  type: string;
  permission: string;
  /** Words used in the comment: "isolate". */
  verb: string | ((action: ActionRecord) => string);
  extra?: (action: ActionRecord) => Record<string, string>;
}

const MDE_ACTIONS: Record<MdeActionType, MdeSpec> = {
  isolateDevice: {
    path: 'isolate',
    type: 'Isolate',
    permission: 'Machine.Isolate',
    verb: 'isolate',
    extra: () => ({ IsolationType: 'Full' }),
  },
  releaseDeviceFromIsolation: {
    path: 'unisolate',
    type: 'Unisolate',
    permission: 'Machine.Isolate',
    verb: 'release from isolation',
  },
  runAntivirusScan: {
    path: 'runAntiVirusScan',
    type: 'RunAntiVirusScan',
    permission: 'Machine.Scan',
    verb: (action) => `${scanTypeOf(action).toLowerCase()} antivirus scan`,
    // The expert's choice, recorded at approval and only ever Quick or Full; Quick when none was recorded.
    extra: (action) => ({ ScanType: scanTypeOf(action) }),
  },
  stopAndQuarantineFile: {
    path: 'StopAndQuarantineFile',
    type: 'StopAndQuarantineFile',
    permission: 'Machine.StopAndQuarantine',
    verb: 'stop and quarantine file',
    extra: (action) => ({ Sha1: action.target.sha1 ?? '' }),
  },
  restrictAppExecution: {
    path: 'restrictCodeExecution',
    type: 'RestrictCodeExecution',
    permission: 'Machine.RestrictExecution',
    verb: 'restrict app execution',
  },
  removeAppRestriction: {
    path: 'unrestrictCodeExecution',
    type: 'UnrestrictCodeExecution',
    permission: 'Machine.RestrictExecution',
    verb: 'remove app restriction',
  },
};

const isMdeAction = (type: ActionType): type is MdeActionType => type in MDE_ACTIONS;

/** The scan the record asks for: Full only when the expert chose it, Quick otherwise. */
function scanTypeOf(action: ActionRecord): ScanType {
  return action.scanType === 'Full' ? 'Full' : 'Quick';
}

const POLL_PERMISSION = 'Machine.Read.All';
const TERMINAL = new Set(['succeeded', 'failed', 'timeout', 'cancelled']);

/** A MachineAction as Defender returns it; only what is read here, the rest is let through. */
const machineActionSchema = z.looseObject({
  id: z.string().min(1),
  type: z.string().nullish(),
  status: z.string().min(1),
  machineId: z.string().nullish(),
  computerDnsName: z.string().nullish(),
  cancellationComment: z.string().nullish(),
  requestorComment: z.string().nullish(),
  creationDateTimeUtc: z.string().nullish(),
  relatedFileInfo: z.looseObject({ fileIdentifier: z.string().nullish() }).nullish(),
});
type MachineAction = z.infer<typeof machineActionSchema>;

const machineActionListSchema = z.looseObject({
  value: z.array(z.unknown()),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * An analyzed email, as Graph beta documents it (microsoft-graph-docs-contrib, beta
 * `resources/security-analyzedemail.md`, `api/security-analyzedemail-get.md`): only what is read here.
 * `latestDelivery` is an `analyzedEmailDeliveryDetail` (`resources/security-analyzedemaildeliverydetail.md`):
 * `action` (deliveryAction) and `location` (deliveryLocation: `unknown`, `inbox_folder`, `junkFolder`,
 * `deletedFolder`, `quarantine`, `onprem_external`, `failed`, `dropped`, `others`, `unknownFutureValue`).
 */
const analyzedEmailSchema = z.looseObject({
  id: z.string().min(1),
  networkMessageId: z.string().nullish(),
  recipientEmailAddress: z.string().nullish(),
  latestDelivery: z.looseObject({ action: z.string().nullish(), location: z.string().nullish() }).nullish(),
});
type AnalyzedEmail = z.infer<typeof analyzedEmailSchema>;

const analyzedEmailListSchema = z.looseObject({
  value: z.array(analyzedEmailSchema),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * `GET analyzedEmails/{id}` answers the analyzedEmail object; the documented example wraps it in
 * `value`, so both are read.
 */
const analyzedEmailGetSchema = z.union([
  analyzedEmailSchema,
  z.looseObject({ value: analyzedEmailSchema }).transform((wrapped) => wrapped.value),
]);

/** Where a soft delete puts an email: the deleted items (recoverable items) folder. */
const SOFT_DELETED = 'deletedfolder';
/**
 * Latest delivery locations a mailbox remediation cannot change: the remediation has failed for that
 * email (it is not in a cloud mailbox).
 */
const OUT_OF_REACH: Record<string, string> = {
  quarantine: 'is in quarantine, not in a mailbox',
  failed: 'was never delivered (delivery failed)',
  dropped: 'was dropped, never delivered to a mailbox',
  onprem_external: 'was delivered to an on-premises or external mailbox, which Defender cannot remediate',
};
/** The user facts the identity actions need (`GET /v1.0/users/{id}?$select=…`). */
const userFactsSchema = z.looseObject({
  id: z.string().min(1),
  onPremisesSyncEnabled: z.boolean().nullish(),
  onPremisesSecurityIdentifier: z.string().nullish(),
});
type UserFacts = z.infer<typeof userFactsSchema>;

/**
 * `GET /v1.0/security/identities/identityAccounts` (v1.0 `api/security-identitycontainer-list-identityaccounts.md`):
 * each account names its provider as `provider` in the documented example and `identityProvider` in the
 * `security-account` resource, so both are read.
 */
const identityAccountListSchema = z.looseObject({
  value: z.array(
    z.looseObject({
      id: z.string().min(1),
      onPremisesSecurityIdentifier: z.string().nullish(),
      accounts: z
        .array(
          z.looseObject({
            identifier: z.string().min(1),
            provider: z.string().nullish(),
            identityProvider: z.string().nullish(),
          }),
        )
        .nullish(),
    }),
  ),
});

/** `invokeAction` answers 200 `{value: {accountId, action, provider, correlationId}}`. */
const invokeActionResultSchema = z.looseObject({
  value: z.looseObject({ correlationId: z.string().nullish() }).nullish(),
});

const roleAssignmentListSchema = z.looseObject({
  value: z.array(z.looseObject({ roleDefinitionId: z.string().min(1) })),
});

/** Built-in role definition ids (their template ids) named in a refusal. */
const ROLE_NAMES: Record<string, string> = {
  '62e90394-69f5-4237-9190-012177145e10': 'Global Administrator',
  '7be44c8a-adaf-4e2a-84d6-ab2649e08a13': 'Privileged Authentication Administrator',
  'e8611ab8-c189-46e8-94e1-60213ab1f814': 'Privileged Role Administrator',
  'fe930be7-5e62-47db-91af-98c3a49a38b1': 'User Administrator',
};

/** The Defender for Identity action for each identity action on an on-premises synced user. */
const MDI_ACTIONS = {
  disableUser: { action: 'disable', done: 'account disabled', manual: 'disable the account' },
  enableUser: { action: 'enable', done: 'account enabled', manual: 'enable the account' },
  forcePasswordReset: {
    action: 'forcePasswordReset',
    done: 'password reset required at next sign-in',
    manual: 'set "User must change password at next logon"',
  },
} as const;

/** Where Action center lists email remediations when Graph gave no `Location`. */
const ACTION_CENTER = 'https://security.microsoft.com/action-center/history';
/** Analyzed emails one `check` asks about at most (Graph allows 150 security requests a minute). */
export const EMAIL_CHECKS_PER_ROUND = 20;
/** Analyzed-email GETs in flight at once. */
const EMAIL_CHECK_PARALLEL = 5;

type Outcome = ExecutionOutcome;
const fail = (reason: string): Outcome => ({ ok: false, reason });
const finishedWith = (outcome: Outcome, externalId?: string): SubmitResult => ({
  kind: 'finished',
  outcome,
  ...(externalId ? { externalId } : {}),
});

/** Ids one `GET machineactions` asks about (`$filter=id in (...)`). */
export const CHECK_BATCH = 25;
/** Pages of one machine-action lookup read at most. */
const LOOKUP_PAGES = 10;
/**
 * How much earlier than the action's start (our clock) Defender's clock may date an action this run
 * created: an adopted action must not be older than that.
 */
const CLOCK_SKEW_MS = 5 * 60_000;
/** Wait after a 429 that named none. */
const DEFAULT_THROTTLE_MS = 60_000;

/** A machine action Defender created or that was found open, as the core records it. */
function submitted(ma: MachineAction): SubmitResult {
  return { kind: 'submitted', externalId: ma.id, status: ma.status, progress: `Defender: ${ma.status}` };
}

/**
 * Carries approved actions out against Microsoft Defender for Endpoint and Microsoft Graph. MDE actions
 * are created once and then left to `check`: a 400 "already in progress" adopts the pending action;
 * after a 5xx or network error Defender is asked for a pending action before anything is sent again; on
 * resuming a run that stopped, the action that run created (its comment names this action) is adopted
 * whatever its status, and only when there is none is it sent; every POST first takes a slot of the
 * pacer (Defender's limits) and confirms the run still holds the action. A soft delete of email is sent
 * once and followed the same way, by its emails' latest delivery location. Every failure is returned as
 * an outcome, never thrown, and no call waits for a remote operation to end.
 */
export class DefenderExecutor implements ResponseExecutor {
  readonly dryRun = false;
  private readonly mde: ApiClient;
  private readonly graph: ApiClient;
  private readonly maxPollMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly emailSearchDays: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly logger: AdapterLogger | undefined;
  private readonly pacer: SubmissionPacer;
  /** Defender asked (429) not to be polled before this time. */
  private checksPausedUntil = 0;
  /** Graph asked (429) not to be asked about analyzed emails before this time. */
  private emailChecksPausedUntil = 0;
  /** Where the next round starts among the remediations in flight, so each is asked in turn. */
  private emailCursor = 0;

  constructor(options: DefenderExecutorOptions) {
    const { credential, defenderApiUrl, graphApiUrl, pacer, ...rest } = options;
    this.mde = new ApiClient(credential, { service: 'Defender', baseUrl: defenderApiUrl }, rest);
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.maxPollMs = options.maxPollMs ?? 10 * 60_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.emailSearchDays = options.emailSearchDays ?? 30;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
    this.pacer = pacer ?? new DefenderPacer({ perMinute: 100, perHour: 1_500, tenant: 'default' });
  }

  async submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    const type = action.type;
    if (isMdeAction(type)) return this.submitMachineAction(action, MDE_ACTIONS[type], context);
    if (type === 'releaseFileFromQuarantine') {
      return finishedWith(
        fail(
          'Defender has no API to release a file from quarantine: an expert does it in the Defender portal (Action center > History > Undo), or for a custom-indicator block on the device with "MpCmdRun.exe -Restore -Name EUS:Win32/CustomEnterpriseBlock -All" (which restores every file blocked that way in the last 30 days), and marks it done',
        ),
      );
    }
    if (type === 'softDeleteEmails') return this.softDeleteEmails(action, context);
    if (!(await context.claim())) return { kind: 'abandoned', reason: 'another run holds the action' };
    return finishedWith(await this.runUserAction(action));
  }

  async check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const results: RemoteCheck[] = actions.map(() => ({ kind: 'unknown', reason: 'not asked' }));
    const machine: number[] = [];
    const emails: number[] = [];
    actions.forEach((action, i) => {
      if (!action.externalId) return;
      if (isMdeAction(action.type)) machine.push(i);
      else if (action.type === 'softDeleteEmails') emails.push(i);
    });
    const remediations = await this.checkRemediations(emails.map((i) => actions[i] as ActionRecord));
    emails.forEach((i, k) => {
      results[i] = remediations[k] ?? results[i] ?? { kind: 'unknown', reason: 'not asked' };
    });
    for (let at = 0; at < machine.length; at += CHECK_BATCH) {
      const batch = machine.slice(at, at + CHECK_BATCH);
      const found = await this.checkBatch(batch.map((i) => actions[i] as ActionRecord));
      batch.forEach((i, k) => {
        results[i] = found[k] ?? results[i] ?? { kind: 'unknown', reason: 'not asked' };
      });
    }
    return results;
  }

  // ---- Defender for Endpoint machine actions ----

  private async submitMachineAction(
    action: ActionRecord,
    spec: MdeSpec,
    context: SubmitContext,
  ): Promise<SubmitResult> {
    if (action.externalId) {
      return {
        kind: 'submitted',
        externalId: action.externalId,
        status: action.remoteStatus ?? 'Pending',
        progress: `Defender: ${action.remoteStatus ?? 'Pending'}`,
      };
    }
    // The machine the exclusion check looked up in Defender is the one acted on.
    const machineId =
      action.resolved?.deviceId ?? action.target.deviceId ?? deviceIdFromEvidence(action, context);
    if (!machineId) return finishedWith(fail('the action names no Defender device id, so nothing was sent'));
    if (action.type === 'stopAndQuarantineFile' && !action.target.sha1) {
      return finishedWith(fail('the action names no file SHA-1, so nothing was sent'));
    }
    if (context.resume) {
      // A run that stopped may have sent it after its last record, and that action may have ended since:
      // adopt the one carrying this action's marker, whatever its status, before sending anything.
      const adopted = await this.adoptOwn(machineId, spec, action, 'resuming');
      if (adopted) return adopted;
    }
    return this.createMachineAction(machineId, action, spec, context);
  }

  /**
   * The result of adopting the machine action an earlier request for this action created (see
   * `findOwn`), finished at once when it already ended; undefined when there is none.
   */
  private async adoptOwn(
    machineId: string,
    spec: MdeSpec,
    action: ActionRecord,
    why: string,
  ): Promise<SubmitResult | undefined> {
    const own = await this.findOwn(machineId, spec, action);
    if (!own.ok) return own.result;
    const ma = own.machineAction;
    if (!ma) return undefined;
    this.logger?.info(
      { incidentId: action.incidentId, actionId: action.id, machineActionId: ma.id, status: ma.status },
      `${why}: adopted the Defender machine action an earlier request sent`,
    );
    return TERMINAL.has(ma.status.toLowerCase()) ? finishedWith(finished(ma, spec), ma.id) : submitted(ma);
  }

  /** POST the action once; re-POST after a fault only when Defender shows no pending action for it. */
  private async createMachineAction(
    machineId: string,
    action: ActionRecord,
    spec: MdeSpec,
    context: SubmitContext,
  ): Promise<SubmitResult> {
    const body = {
      Comment: `MDR: ${typeof spec.verb === 'string' ? spec.verb : spec.verb(action)}${actionMarker(action)}approved by ${context.approvedBy})`,
      ...(spec.extra?.(action) ?? {}),
    };
    const what = `POST ${spec.path}`;
    const wording = {
      permission: spec.permission,
      notFound: `device ${machineId} was not found in Defender`,
      what,
    };
    let last: HttpResult | undefined;
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      if (last) {
        // The previous POST may have reached Defender, and what it created may even have ended: never
        // send a second one blindly.
        const adopted = await this.adoptOwn(machineId, spec, action, 'retrying after a fault');
        if (adopted) return adopted;
        const pending = await this.findPending(machineId, spec, action, true);
        if (!pending.ok) return pending.result;
        if (pending.machineAction) return submitted(pending.machineAction);
        await this.sleep(Math.min(this.retryBaseMs * 2 ** (attempt - 1), 30_000));
      }
      if (!(await context.claim())) {
        return { kind: 'abandoned', reason: 'another run took the action over; nothing more was sent' };
      }
      const slot = await this.pacer.take(spec.path);
      if (!slot.ok) {
        return { kind: 'throttled', retryAfterMs: slot.retryAfterMs, reason: slot.reason, ...sentIf(last) };
      }
      const result = await this.mde.send({
        method: 'POST',
        path: `/api/machines/${encodeURIComponent(machineId)}/${spec.path}`,
        body,
        retryUnsafe: false,
        on429: 'return',
      });
      if (result.kind === 'response' && (result.status === 200 || result.status === 201)) {
        const parsed = machineActionSchema.safeParse(result.body);
        if (!parsed.success) {
          return finishedWith(
            fail(
              `Defender accepted ${what} but its answer had no machine action id and status; check Action center in the Defender portal`,
            ),
          );
        }
        return submitted(parsed.data);
      }
      if (result.kind === 'response' && result.status === 429) {
        // Refused, so not created: wait as long as Defender asks, on every replica.
        const wait = retryAfterMs(result.headers) ?? DEFAULT_THROTTLE_MS;
        await this.pacer.pause(spec.path, wait);
        return {
          kind: 'throttled',
          retryAfterMs: wait,
          reason: describeFailure('Defender', result, wording),
          ...sentIf(last),
        };
      }
      if (result.kind === 'response' && result.status === 400 && isAlreadyInProgress(result.body)) {
        const pending = await this.findPending(machineId, spec, action, true);
        if (!pending.ok) return pending.result;
        if (pending.machineAction) return submitted(pending.machineAction);
        return finishedWith(
          fail(
            `Defender says a ${spec.type} action is already in progress on device ${machineId}, but it could not be found to follow; check Action center in the Defender portal`,
          ),
        );
      }
      const transient = result.kind === 'network' || (result.kind === 'response' && result.status >= 500);
      if (!transient) return finishedWith(fail(describeFailure('Defender', result, wording)));
      this.logger?.warn(
        { machineId, type: spec.type, status: result.kind === 'response' ? result.status : undefined },
        'Defender action request failed; checking for a pending action before retrying',
      );
      last = result;
    }
    const pending = await this.findPending(machineId, spec, action, true);
    if (!pending.ok) return pending.result;
    if (pending.machineAction) return submitted(pending.machineAction);
    const lastAnswer = describeFailure(
      'Defender',
      last ?? { kind: 'network', message: 'no answer', attempts: 0 },
      wording,
    );
    return finishedWith(
      fail(
        `${lastAnswer}; gave up after ${this.maxRetries + 1} requests and no pending ${spec.type} action was found`,
      ),
    );
  }

  /**
   * The open (Pending, then InProgress) machine action of this type on the device, if any; of several,
   * the one carrying this action's marker, else one whose comment names this incident. A 429 is a wait
   * (throttled), any other failure ends the action: nothing is sent while it cannot be known whether
   * Defender already has it.
   */
  private async findPending(
    machineId: string,
    spec: MdeSpec,
    action: ActionRecord,
    maybeSent = false,
  ): Promise<{ ok: true; machineAction?: MachineAction } | { ok: false; result: SubmitResult }> {
    const marker = actionMarker(action);
    const incident = ` per incident ${action.incidentId}`;
    const sameIncident = (ma: MachineAction) =>
      [' ', ','].some((end) => ma.requestorComment?.includes(`${incident}${end}`));
    for (const status of ['Pending', 'InProgress']) {
      const listed = await this.listMachineActions(
        `machineId eq '${odata(machineId)}' and type eq '${spec.type}' and status eq '${status}'`,
        machineId,
        spec,
        maybeSent,
      );
      if (!listed.ok) return listed;
      const open = listed.machineActions.filter((ma) => sameCase(ma.status, status) && sameFile(ma, action));
      const found =
        open.find((ma) => ma.requestorComment?.includes(marker)) ?? open.find(sameIncident) ?? open[0];
      if (found) {
        this.logger?.info({ machineId, machineActionId: found.id }, 'adopting pending Defender action');
        return { ok: true, machineAction: found };
      }
    }
    return { ok: true };
  }

  /**
   * The machine action of this type on the device that a run of this very action created, whatever its
   * status: its comment carries the action's marker, and it was created no earlier than the action
   * started executing (less a clock-skew allowance; an action of the same ids from an earlier life of
   * the store is not it). Of several, the newest. Failures as in `findPending`; the request may have
   * been sent, so a 429 leaves it to the next run to look again.
   */
  private async findOwn(
    machineId: string,
    spec: MdeSpec,
    action: ActionRecord,
  ): Promise<{ ok: true; machineAction?: MachineAction } | { ok: false; result: SubmitResult }> {
    const listed = await this.listMachineActions(
      `machineId eq '${odata(machineId)}' and type eq '${spec.type}'`,
      machineId,
      spec,
      true,
    );
    if (!listed.ok) return listed;
    const marker = actionMarker(action);
    const since = Date.parse(action.executingSince ?? action.decidedAt ?? '');
    const created = (ma: MachineAction) => utcMs(ma.creationDateTimeUtc ?? '');
    const own = listed.machineActions
      .filter((ma) => ma.requestorComment?.includes(marker) && sameFile(ma, action))
      .filter((ma) => Number.isNaN(since) || !(created(ma) < since - CLOCK_SKEW_MS))
      .sort((a, b) => (created(b) || 0) - (created(a) || 0));
    return { ok: true, ...(own[0] ? { machineAction: own[0] } : {}) };
  }

  /**
   * `GET machineactions?$filter=...`, following `@odata.nextLink` for a few pages. A 429 is a wait
   * (throttled; `maybeSent` says the next run must look again), any other failure ends the action.
   */
  private async listMachineActions(
    filter: string,
    machineId: string,
    spec: MdeSpec,
    maybeSent: boolean,
  ): Promise<{ ok: true; machineActions: MachineAction[] } | { ok: false; result: SubmitResult }> {
    const wording = {
      permission: POLL_PERMISSION,
      notFound: `device ${machineId} was not found in Defender`,
      what: 'GET machineactions',
    };
    const machineActions: MachineAction[] = [];
    let next: string | undefined;
    for (let page = 0; page < LOOKUP_PAGES; page++) {
      const result = await this.mde.send({
        method: 'GET',
        path: next ?? '/api/machineactions',
        ...(next ? {} : { query: { $filter: filter } }),
        on429: 'return',
      });
      if (result.kind === 'response' && result.status === 429) {
        const wait = retryAfterMs(result.headers) ?? DEFAULT_THROTTLE_MS;
        return {
          ok: false,
          result: {
            kind: 'throttled',
            retryAfterMs: wait,
            reason: describeFailure('Defender', result, wording),
            // A request of an earlier attempt may have reached Defender: the next run looks again.
            ...(maybeSent ? { maybeSent: true } : {}),
          },
        };
      }
      if (!(result.kind === 'response' && result.ok)) {
        return {
          ok: false,
          result: finishedWith(
            fail(
              `could not check whether Defender already has this ${spec.type} action, so it was not sent again: ${describeFailure(
                'Defender',
                result,
                wording,
              )}`,
            ),
          ),
        };
      }
      const list = machineActionListSchema.safeParse(result.body);
      if (!list.success) break;
      for (const item of list.data.value) {
        const parsed = machineActionSchema.safeParse(item);
        if (parsed.success) machineActions.push(parsed.data);
      }
      const link = list.data['@odata.nextLink'] ?? undefined;
      next = link && this.mde.sameOrigin(link) ? link : undefined;
      if (!next) break;
    }
    return { ok: true, machineActions };
  }

  /**
   * One `GET machineactions?$filter=id in (...)` for up to CHECK_BATCH submitted actions. A 429, 5xx or
   * network error leaves them unknown this round (a 429 also holds every check for its Retry-After),
   * except those whose bounded wait is over: they fail, saying where to follow them.
   */
  private async checkBatch(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const ids = actions.map((a) => a.externalId as string);
    const wording = {
      permission: POLL_PERMISSION,
      notFound: 'the machine actions were not found',
      what: 'GET machineactions',
    };
    let problem: string;
    if (this.now() < this.checksPausedUntil) {
      problem = 'Defender asked to wait (429)';
    } else {
      const result = await this.mde.send({
        method: 'GET',
        path: '/api/machineactions',
        query: { $filter: `id in (${ids.map((id) => `'${odata(id)}'`).join(',')})` },
        on429: 'return',
        retries: 0,
      });
      if (result.kind === 'response' && result.ok) {
        const list = machineActionListSchema.safeParse(result.body);
        const byId = new Map<string, MachineAction>();
        for (const item of list.success ? list.data.value : []) {
          const parsed = machineActionSchema.safeParse(item);
          if (parsed.success) byId.set(parsed.data.id.toLowerCase(), parsed.data);
        }
        return actions.map((action) => {
          const ma = byId.get((action.externalId as string).toLowerCase());
          const spec = MDE_ACTIONS[action.type as MdeActionType];
          if (ma && TERMINAL.has(ma.status.toLowerCase()))
            return { kind: 'finished', outcome: finished(ma, spec) };
          const status = ma?.status ?? action.remoteStatus ?? 'unknown';
          if (this.overdue(action)) {
            return {
              kind: 'finished',
              outcome: this.tooLong(action, spec, status, ma ? undefined : 'not listed by Defender'),
            };
          }
          return ma
            ? { kind: 'running', status, progress: `Defender: ${status}` }
            : { kind: 'unknown', reason: 'not listed by Defender yet' };
        });
      }
      const passing =
        result.kind === 'network' ||
        (result.kind === 'response' && (result.status === 429 || result.status >= 500));
      problem = describeFailure('Defender', result, wording);
      if (!passing) {
        // The actions exist already: a permanent refusal ends the wait, a passing fault does not.
        return actions.map((action) => ({
          kind: 'finished',
          outcome: fail(`${problem}; follow action ${action.externalId} in the Defender portal`),
        }));
      }
      if (result.kind === 'response' && result.status === 429) {
        this.checksPausedUntil = this.now() + (retryAfterMs(result.headers) ?? DEFAULT_THROTTLE_MS);
      }
    }
    return actions.map((action): RemoteCheck => {
      if (!this.overdue(action)) return { kind: 'unknown', reason: problem };
      const spec = MDE_ACTIONS[action.type as MdeActionType];
      return {
        kind: 'finished',
        outcome: this.tooLong(action, spec, action.remoteStatus ?? 'unknown', problem),
      };
    });
  }

  private overdue(action: ActionRecord): boolean {
    const since = Date.parse(action.submittedAt ?? action.updatedAt);
    return this.now() - since >= this.maxPollMs;
  }

  private tooLong(action: ActionRecord, spec: MdeSpec, status: string, lastProblem?: string): Outcome {
    const also = lastProblem ? ` (last poll: ${lastProblem})` : '';
    return fail(
      `${spec.type} still ${status} after ${formatDuration(this.maxPollMs)}; follow it in the Defender portal (Action center), action id ${action.externalId}${also}`,
    );
  }

  // ---- Microsoft Graph user actions ----

  /**
   * The identity actions: each is done (or refused) at once. Disable, enable, suspend, unsuspend and
   * force password reset first read whether the user is synced from on-premises Active Directory: Entra
   * ID refuses to change those, so their account step goes through Defender for Identity instead.
   */
  private async runUserAction(action: ActionRecord): Promise<Outcome> {
    const user = userRef(action);
    if (!user) return fail('the action names no user id or UPN, so nothing was sent');
    switch (action.type) {
      case 'forcePasswordReset':
      case 'disableUser':
      case 'enableUser':
      case 'suspendUser':
      case 'unsuspendUser': {
        const facts = await this.userFacts(user);
        if (!facts.ok) return facts;
        if (action.type === 'suspendUser') return this.suspendUser(user, facts.user);
        // Unsuspending is enabling the account again (suspend has no API of its own).
        const type = action.type === 'unsuspendUser' ? 'enableUser' : action.type;
        if (facts.user.onPremisesSyncEnabled === true) {
          return this.onPremisesAction(type, user, facts.user);
        }
        if (type === 'forcePasswordReset') return this.forcePasswordReset(user, facts.user.id);
        const enable = type === 'enableUser';
        return this.patchUser(
          user,
          facts.user.id,
          { accountEnabled: enable },
          'User.EnableDisableAccount.All',
          enable ? 'account enabled (accountEnabled true)' : 'account disabled (accountEnabled false)',
        );
      }
      case 'revokeUserTokens':
        return this.revokeSessions(user);
      default:
        return fail(`${action.type} is not an action this executor carries out`);
    }
  }

  /** `GET /v1.0/users/{id}?$select=id,onPremisesSyncEnabled,onPremisesSecurityIdentifier`. */
  private async userFacts(
    user: string,
  ): Promise<{ ok: true; user: UserFacts } | { ok: false; reason: string }> {
    const result = await this.graph.send({
      method: 'GET',
      path: `/v1.0/users/${encodeURIComponent(user)}`,
      query: { $select: 'id,onPremisesSyncEnabled,onPremisesSecurityIdentifier' },
    });
    if (!(result.kind === 'response' && result.ok)) {
      return {
        ok: false,
        reason: `nothing was changed: ${describeFailure('Microsoft Graph', result, {
          permission: 'User.Read.All',
          notFound: `user ${user} was not found in Microsoft Entra ID`,
          what: 'GET user',
        })}`,
      };
    }
    const parsed = userFactsSchema.safeParse(result.body);
    if (!parsed.success) {
      return {
        ok: false,
        reason: `nothing was changed: Microsoft Graph answered GET user ${user} without the user's id`,
      };
    }
    return { ok: true, user: parsed.data };
  }

  /**
   * Require a password change at next sign-in, with multifactor authentication first (so whoever holds
   * the stolen password cannot choose the new one), revoke the sign-in sessions, then confirm the user
   * compromised in Identity Protection (Entra ID P2; a 403 there is a skipped step).
   */
  private async forcePasswordReset(user: string, objectId: string): Promise<Outcome> {
    const reset = await this.patchUser(
      user,
      objectId,
      {
        passwordProfile: { forceChangePasswordNextSignIn: true, forceChangePasswordNextSignInWithMfa: true },
      },
      'User-PasswordProfile.ReadWrite.All',
      'password change required at next sign-in, after MFA',
    );
    if (!reset.ok) return reset;
    return this.afterPasswordReset(user, objectId, 'password change required at next sign-in, after MFA');
  }

  /** The steps after the password reset: revoke sessions, confirm compromised; each step's outcome listed. */
  private async afterPasswordReset(user: string, objectId: string, first: string): Promise<Outcome> {
    const steps = [first];
    const revoked = await this.revokeSessions(user);
    if (!revoked.ok) {
      return fail(`${user}: ${steps.join('; ')}; but revoking sign-in sessions failed: ${revoked.reason}`);
    }
    steps.push('sign-in sessions revoked');
    const confirmed = await this.confirmCompromised(objectId);
    if (!confirmed.ok) {
      return fail(
        `${user}: ${steps.join('; ')}; but confirming the user compromised failed: ${confirmed.reason}`,
      );
    }
    steps.push(confirmed.detail);
    return { ok: true, detail: `${user}: ${steps.join('; ')}` };
  }

  /** `POST /v1.0/identityProtection/riskyUsers/confirmCompromised` (204); a 403 is reported as skipped. */
  private async confirmCompromised(objectId: string): Promise<Outcome> {
    const result = await this.graph.send({
      method: 'POST',
      path: '/v1.0/identityProtection/riskyUsers/confirmCompromised',
      body: { userIds: [objectId] },
    });
    if (result.kind === 'response' && result.ok) {
      return { ok: true, detail: 'confirmed compromised in Identity Protection (user risk high)' };
    }
    if (result.kind === 'response' && result.status === 403) {
      return {
        ok: true,
        detail: 'confirm compromised skipped (needs Entra ID P2 / IdentityRiskyUser.ReadWrite.All)',
      };
    }
    return fail(
      describeFailure('Microsoft Graph', result, {
        permission: 'IdentityRiskyUser.ReadWrite.All',
        notFound: `user ${objectId} was not found by Identity Protection`,
        what: 'POST riskyUsers/confirmCompromised',
      }),
    );
  }

  /**
   * Disable, enable or force a password reset of a user synced from on-premises Active Directory through
   * Defender for Identity: the identity account is found by the user's on-premises SID (`GET
   * /v1.0/security/identities/identityAccounts?$filter=onPremisesSecurityIdentifier eq '…'`), its
   * Active Directory account id is the `accountId` of `POST …/identityAccounts/{id}/invokeAction`.
   */
  private async onPremisesAction(
    type: 'forcePasswordReset' | 'disableUser' | 'enableUser',
    user: string,
    facts: UserFacts,
  ): Promise<Outcome> {
    const mdiAction = MDI_ACTIONS[type];
    const sid = facts.onPremisesSecurityIdentifier;
    if (!sid) {
      return fail(
        `${user} is synced from on-premises Active Directory (Entra ID cannot change it) and Microsoft Graph gave no onPremisesSecurityIdentifier to find it in Defender for Identity, so nothing was sent: ${mdiAction.manual} in Active Directory`,
      );
    }
    const found = await this.graph.send({
      method: 'GET',
      path: '/v1.0/security/identities/identityAccounts',
      query: { $filter: `onPremisesSecurityIdentifier eq '${odata(sid)}'` },
    });
    if (!(found.kind === 'response' && found.ok)) {
      return fail(
        `${user} is synced from on-premises Active Directory, so it is changed through Defender for Identity, and nothing was sent: ${describeFailure(
          'Microsoft Graph',
          found,
          {
            permission: 'SecurityIdentitiesAccount.Read.All',
            notFound:
              'the Defender for Identity identity accounts API was not found (it is global-cloud only)',
            what: 'GET identityAccounts',
          },
        )}`,
      );
    }
    const list = identityAccountListSchema.safeParse(found.body);
    const identity = (list.success ? list.data.value : []).find(
      (item) => !item.onPremisesSecurityIdentifier || sameCase(item.onPremisesSecurityIdentifier, sid),
    );
    const account = identity?.accounts?.find((a) =>
      sameCase(a.identityProvider ?? a.provider ?? '', 'activeDirectory'),
    );
    if (!identity || !account) {
      return fail(
        `${user} is synced from on-premises Active Directory, and Defender for Identity observes no Active Directory account with SID ${sid}, so nothing was sent: ${mdiAction.manual} in Active Directory`,
      );
    }
    const result = await this.graph.send({
      method: 'POST',
      path: `/v1.0/security/identities/identityAccounts/${encodeURIComponent(identity.id)}/invokeAction`,
      body: { accountId: account.identifier, action: mdiAction.action, identityProvider: 'activeDirectory' },
    });
    if (!(result.kind === 'response' && result.ok)) {
      return fail(
        `${user} is synced from on-premises Active Directory: ${describeFailure('Microsoft Graph', result, {
          permission: 'SecurityIdentitiesActions.ReadWrite.All',
          notFound: `identity account ${identity.id} was not found in Defender for Identity`,
          what: `POST identityAccounts invokeAction ${mdiAction.action}`,
        })}`,
      );
    }
    const answered = invokeActionResultSchema.safeParse(result.body);
    const correlation = answered.success ? answered.data.value?.correlationId : undefined;
    const done = `${mdiAction.done} in Active Directory through Defender for Identity${correlation ? ` (correlation id ${correlation})` : ''}`;
    if (type !== 'forcePasswordReset') return { ok: true, detail: `${user}: ${done}` };
    return this.afterPasswordReset(user, facts.id, done);
  }

  /**
   * PATCH the user. A 403 Authorization_RequestDenied is what Graph answers both for a missing
   * permission and for a user who holds an admin role the app's Entra role does not cover (same code,
   * same message), so the user's role assignments are read to tell which.
   */
  private async patchUser(
    user: string,
    objectId: string | undefined,
    body: Record<string, unknown>,
    permission: string,
    done: string,
  ): Promise<Outcome> {
    const result = await this.graph.send({
      method: 'PATCH',
      path: `/v1.0/users/${encodeURIComponent(user)}`,
      body,
    });
    if (result.kind === 'response' && result.ok) return { ok: true, detail: `${user}: ${done}` };
    const reason = describeFailure('Microsoft Graph', result, {
      permission,
      notFound: `user ${user} was not found in Microsoft Entra ID`,
      what: 'PATCH user',
    });
    if (
      result.kind === 'response' &&
      result.status === 403 &&
      apiError(result.body).code === 'Authorization_RequestDenied'
    ) {
      return fail(await this.deniedOnUser(user, objectId, result, reason));
    }
    return fail(reason);
  }

  /**
   * The reason of a 403 Authorization_RequestDenied on PATCH user: when the user holds a directory role
   * (`GET /v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '…'`), the app needs a
   * privileged Entra role for that user, not a permission; when the roles cannot be read, both causes are
   * named.
   */
  private async deniedOnUser(
    user: string,
    objectId: string | undefined,
    result: HttpResult,
    missingPermission: string,
  ): Promise<string> {
    const { code, message } = apiError(result.kind === 'response' ? result.body : undefined);
    const said = [code, message].filter(Boolean).join(': ');
    const adminRole = `the app needs a privileged Microsoft Entra role that covers this user (Privileged Authentication Administrator; User Administrator covers only users without an admin role)`;
    if (!objectId) {
      return `${missingPermission}; or, if ${user} holds a Microsoft Entra admin role, ${adminRole}`;
    }
    const roles = await this.graph.send({
      method: 'GET',
      path: '/v1.0/roleManagement/directory/roleAssignments',
      query: { $filter: `principalId eq '${odata(objectId)}'` },
    });
    const list =
      roles.kind === 'response' && roles.ok ? roleAssignmentListSchema.safeParse(roles.body) : undefined;
    if (!list?.success) {
      return `${missingPermission}; or, if ${user} holds a Microsoft Entra admin role, ${adminRole} (its roles could not be read: RoleManagement.Read.Directory tells which)`;
    }
    if (list.data.value.length === 0) return missingPermission;
    const names = [
      ...new Set(
        list.data.value.map(
          (a) => ROLE_NAMES[a.roleDefinitionId.toLowerCase()] ?? `role ${a.roleDefinitionId}`,
        ),
      ),
    ];
    return `Microsoft Graph answered 403 Forbidden to PATCH user: ${user} holds a Microsoft Entra admin role (${names.join(', ')}), so ${adminRole}; this is not a missing API permission (${said})`;
  }

  private async revokeSessions(user: string): Promise<Outcome> {
    // Revoking twice is harmless, so this POST may be retried.
    const result = await this.graph.send({
      method: 'POST',
      path: `/v1.0/users/${encodeURIComponent(user)}/revokeSignInSessions`,
    });
    if (!(result.kind === 'response' && result.ok)) {
      return fail(
        describeFailure('Microsoft Graph', result, {
          permission: 'User.RevokeSessions.All',
          notFound: `user ${user} was not found in Microsoft Entra ID`,
          what: 'POST revokeSignInSessions',
        }),
      );
    }
    return { ok: true, detail: `${user}: sign-in sessions revoked (takes a few minutes to reach every app)` };
  }

  /**
   * Suspend: block sign-in (PATCH `accountEnabled: false`, or for a user synced from on-premises Active
   * Directory a Defender for Identity `disable`), then revoke the sign-in sessions through Graph.
   */
  private async suspendUser(user: string, facts: UserFacts): Promise<Outcome> {
    const disabled =
      facts.onPremisesSyncEnabled === true
        ? await this.onPremisesAction('disableUser', user, facts)
        : await this.patchUser(
            user,
            facts.id,
            { accountEnabled: false },
            'User.EnableDisableAccount.All',
            'sign-in blocked (accountEnabled false)',
          );
    if (!disabled.ok) return disabled;
    const revoked = await this.revokeSessions(user);
    if (!revoked.ok) return fail(`${disabled.detail}, but revoking sessions failed: ${revoked.reason}`);
    return { ok: true, detail: `${disabled.detail}; sign-in sessions revoked` };
  }

  // ---- Microsoft Graph email remediation ----

  /**
   * Find the analyzed emails of the message and ask Defender once to soft-delete them. Graph answers 202
   * with a `Location` (an Action center link carrying the bulk id, no status API behind it: beta
   * `api/security-analyzedemail-remediate.md`), so the remediation is followed by the emails' latest
   * delivery location (see `checkRemediations`): the link is recorded as the remote id and the email
   * ids as its items. One with a remote id is never sent again.
   */
  private async softDeleteEmails(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    if (action.externalId) {
      // Sent before a restart: a second remediation would only duplicate it in Action center.
      return {
        kind: 'submitted',
        externalId: action.externalId,
        status: action.remoteStatus ?? 'submitted',
        progress: action.progress ?? 'Soft delete submitted',
        ...(action.remoteItems ? { items: action.remoteItems } : {}),
      };
    }
    const { networkMessageId, recipient } = action.target;
    if (!networkMessageId) {
      return finishedWith(fail('the action names no network message id, so nothing was sent'));
    }
    const found = await this.findAnalyzedEmails(networkMessageId, recipient);
    if (!found.ok) return finishedWith(found);
    if (found.emails.length === 0) {
      return finishedWith(
        fail(
          `no analyzed email with network message id ${networkMessageId}${recipient ? ` for ${recipient}` : ''} in the last ${this.emailSearchDays} days, so nothing was deleted`,
        ),
      );
    }
    const ids = found.emails.map((email) => email.id);
    if (!(await context.claim())) return { kind: 'abandoned', reason: 'another run holds the action' };
    const approver = context.approvedBy.replace(/^[a-z]+:/, '');
    const result = await this.graph.send({
      method: 'POST',
      path: '/beta/security/collaboration/analyzedEmails/remediate',
      body: {
        displayName: `MDR: soft delete per incident ${action.incidentId}`,
        description: `Soft delete of message ${networkMessageId}${recipient ? ` to ${recipient}` : ''}, approved by ${context.approvedBy}`,
        severity: 'medium',
        action: 'softDelete',
        ...(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(approver) ? { approverUpn: approver } : {}),
        remediateSendersCopy: false,
        analyzedEmails: ids.map((id) => ({ id })),
      },
      // A repeated remediation would show twice in Action center: only a 429 (refused) is retried.
      retryUnsafe: false,
    });
    if (!(result.kind === 'response' && result.ok)) {
      const reason = describeFailure('Microsoft Graph', result, {
        permission: 'SecurityAnalyzedMessage.ReadWrite.All',
        notFound: `the analyzed email ${networkMessageId} was not found`,
        what: 'POST analyzedEmails/remediate',
      });
      const unsure = result.kind === 'network' || (result.kind === 'response' && result.status >= 500);
      return finishedWith(
        fail(
          unsure
            ? `${reason}; it may still have been accepted: check Action center > History in the Defender portal before doing it by hand`
            : reason,
        ),
      );
    }
    const location = result.headers.get('location') ?? '';
    return {
      kind: 'submitted',
      externalId: /^https:\/\//i.test(location) ? location : ACTION_CENTER,
      status: 'submitted',
      progress: remediationProgress(0, ids.length),
      items: ids,
    };
  }

  /**
   * The state of submitted soft deletes, from each analyzed email's `latestDelivery.location` (`GET
   * /beta/security/collaboration/analyzedEmails/{id}`, beta `api/security-analyzedemail-get.md`):
   * done when every email is in `deletedFolder`, failed when one is where no mailbox remediation reaches
   * (quarantine, dropped, failed delivery, on-premises) or Graph refuses for good, else still running. At
   * most EMAIL_CHECKS_PER_ROUND emails are asked per round, starting each round where the last stopped;
   * a 429 holds every email check for its Retry-After. The bounded wait is the machine actions' one.
   */
  private async checkRemediations(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const results: RemoteCheck[] = actions.map((action) =>
      this.overdue(action)
        ? { kind: 'finished', outcome: this.remediationTooLong(action, 'not asked this round') }
        : { kind: 'unknown', reason: 'not asked this round' },
    );
    if (actions.length === 0) return results;
    let budget = EMAIL_CHECKS_PER_ROUND;
    const start = this.emailCursor % actions.length;
    for (let k = 0; k < actions.length && budget > 0; k++) {
      const i = (start + k) % actions.length;
      const action = actions[i] as ActionRecord;
      if (this.now() < this.emailChecksPausedUntil) {
        results[i] = this.emailsUnknown(action, 'Microsoft Graph asked to wait (429)');
        continue;
      }
      const ids = action.remoteItems ?? [];
      if (ids.length === 0) {
        results[i] = {
          kind: 'finished',
          outcome: fail(
            `the soft delete recorded no analyzed email to follow; check it in Action center: ${action.externalId}`,
          ),
        };
        continue;
      }
      budget -= ids.length;
      this.emailCursor = i + 1;
      results[i] = await this.checkRemediation(action, ids);
    }
    return results;
  }

  private async checkRemediation(action: ActionRecord, ids: string[]): Promise<RemoteCheck> {
    const answers: HttpResult[] = [];
    for (let at = 0; at < ids.length; at += EMAIL_CHECK_PARALLEL) {
      const chunk = ids.slice(at, at + EMAIL_CHECK_PARALLEL);
      answers.push(
        ...(await Promise.all(
          chunk.map((id) =>
            this.graph.send({
              method: 'GET',
              path: `/beta/security/collaboration/analyzedEmails/${encodeURIComponent(id)}`,
              on429: 'return',
              retries: 0,
            }),
          ),
        )),
      );
    }
    const link = action.externalId as string;
    let deleted = 0;
    let passing: string | undefined;
    const refused: string[] = [];
    for (const [k, result] of answers.entries()) {
      const id = ids[k] as string;
      if (result.kind === 'response' && result.ok) {
        const parsed = analyzedEmailGetSchema.safeParse(result.body);
        const location = parsed.success ? (parsed.data.latestDelivery?.location ?? '') : '';
        const where = location.toLowerCase();
        if (where === SOFT_DELETED) deleted++;
        else if (OUT_OF_REACH[where])
          refused.push(`email ${id} ${OUT_OF_REACH[where]} (latest delivery location ${location})`);
        continue;
      }
      const wording = {
        // The permission the remediation needs; it covers reading the analyzed emails too.
        permission: 'SecurityAnalyzedMessage.ReadWrite.All',
        notFound: `the analyzed email ${id} is no longer found`,
        what: 'GET analyzedEmails',
      };
      const transient =
        result.kind === 'network' ||
        (result.kind === 'response' && (result.status === 429 || result.status >= 500));
      if (!transient) {
        refused.push(describeFailure('Microsoft Graph', result, wording));
        continue;
      }
      if (result.kind === 'response' && result.status === 429) {
        this.emailChecksPausedUntil = this.now() + (retryAfterMs(result.headers) ?? DEFAULT_THROTTLE_MS);
      }
      passing ??= describeFailure('Microsoft Graph', result, wording);
    }
    if (refused.length > 0) {
      return {
        kind: 'finished',
        outcome: fail(
          `soft delete of ${ids.length} email(s) failed: ${refused.join('; ')}; see Action center: ${link}`,
        ),
      };
    }
    // An email not read this round may be deleted already: the count would go back on the card.
    if (passing) return this.emailsUnknown(action, passing);
    if (deleted === ids.length) {
      return {
        kind: 'finished',
        outcome: {
          ok: true,
          detail: `Defender: ${deleted} email(s) soft-deleted (now in deleted items); Action center: ${link}`,
        },
      };
    }
    if (this.overdue(action)) {
      return { kind: 'finished', outcome: this.remediationTooLong(action, undefined, deleted) };
    }
    return { kind: 'running', status: 'submitted', progress: remediationProgress(deleted, ids.length) };
  }

  private emailsUnknown(action: ActionRecord, problem: string): RemoteCheck {
    return this.overdue(action)
      ? { kind: 'finished', outcome: this.remediationTooLong(action, problem) }
      : { kind: 'unknown', reason: problem };
  }

  private remediationTooLong(action: ActionRecord, lastProblem?: string, deleted?: number): Outcome {
    const total = action.remoteItems?.length ?? 0;
    const seen = deleted === undefined ? '' : ` (${deleted} of ${total} in deleted items)`;
    const also = lastProblem ? ` (last check: ${lastProblem})` : '';
    return fail(
      `soft delete of ${total} email(s) not confirmed by Defender after ${formatDuration(this.maxPollMs)}${seen}; follow it in Action center: ${action.externalId}${also}`,
    );
  }

  private async findAnalyzedEmails(
    networkMessageId: string,
    recipient: string | undefined,
  ): Promise<{ ok: true; emails: AnalyzedEmail[] } | { ok: false; reason: string }> {
    const end = new Date(this.now());
    const start = new Date(end.getTime() - this.emailSearchDays * 86_400_000);
    const emails: AnalyzedEmail[] = [];
    let next: string | undefined = this.graph.url('/beta/security/collaboration/analyzedEmails', {
      startTime: start.toISOString(),
      endTime: end.toISOString(),
      $filter: `networkMessageId eq '${odata(networkMessageId)}'`,
    });
    for (let page = 0; next && page < 10; page++) {
      const result = await this.graph.send({ method: 'GET', path: next });
      if (!(result.kind === 'response' && result.ok)) {
        return {
          ok: false,
          reason: describeFailure('Microsoft Graph', result, {
            permission: 'SecurityAnalyzedMessage.ReadWrite.All',
            notFound: 'the analyzed emails API was not found (it is beta and global-cloud only)',
            what: 'GET analyzedEmails',
          }),
        };
      }
      const parsed = analyzedEmailListSchema.safeParse(result.body);
      if (!parsed.success) {
        return { ok: false, reason: 'Microsoft Graph answered GET analyzedEmails without a value list' };
      }
      for (const email of parsed.data.value) {
        if (email.networkMessageId && !sameCase(email.networkMessageId, networkMessageId)) continue;
        if (recipient && email.recipientEmailAddress && !sameCase(email.recipientEmailAddress, recipient))
          continue;
        emails.push(email);
      }
      const link = parsed.data['@odata.nextLink'] ?? undefined;
      next = link && this.graph.sameOrigin(link) ? link : undefined;
    }
    return { ok: true, emails };
  }
}

/** The card's progress of a soft delete while Defender has not confirmed every email. */
function remediationProgress(deleted: number, total: number): string {
  return `Soft delete submitted: ${deleted} of ${total} email(s) in deleted items`;
}

function finished(ma: MachineAction, spec: MdeSpec): Outcome {
  const on = ma.computerDnsName ? ` on ${ma.computerDnsName}` : '';
  const status = ma.status;
  if (sameCase(status, 'Succeeded')) {
    return { ok: true, detail: `Defender: ${spec.type} Succeeded${on} (action id ${ma.id})` };
  }
  const why = ma.cancellationComment ? `: ${ma.cancellationComment}` : '';
  return fail(`Defender reported ${spec.type} ${status}${on}${why} (action id ${ma.id})`);
}

/**
 * What the request's comment says of the action it carries out (" per incident 48213, action act-1 (",
 * from "MDR: isolate per incident 48213, action act-1 (approved by ...)"): ids hold no space, comma or
 * parenthesis, so the marker of `act-1` is not part of the one of `act-10`.
 */
function actionMarker(action: ActionRecord): string {
  return ` per incident ${action.incidentId}, action ${action.id} (`;
}

/** A throttled answer after an earlier attempt that may have reached Defender says so. */
function sentIf(last: HttpResult | undefined): { maybeSent?: true } {
  return last ? { maybeSent: true } : {};
}

function isAlreadyInProgress(body: unknown): boolean {
  const { code, message } = apiError(body);
  return code === 'ActiveRequestAlreadyExists' || /already in progress/i.test(message ?? '');
}

function sameCase(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** A pending StopAndQuarantineFile is adopted only when it is for the same file (when Defender says). */
function sameFile(ma: MachineAction, action: ActionRecord): boolean {
  const file = ma.relatedFileInfo?.fileIdentifier;
  if (action.type !== 'stopAndQuarantineFile' || !file || !action.target.sha1) return true;
  return sameCase(file, action.target.sha1);
}

function deviceIdFromEvidence(action: ActionRecord, context: SubmitContext): string | undefined {
  const name = action.target.deviceName?.toLowerCase();
  if (!name) return undefined;
  return context.incident.devices.find((d) => d.dnsName?.toLowerCase() === name)?.id;
}

/** The user to act on: the Entra object id the exclusion check resolved, else what the action names. */
function userRef(action: ActionRecord): string | undefined {
  return action.resolved?.userId ?? action.target.userId ?? action.target.upn;
}

/** An ISO time Defender gives in UTC, read as UTC even when it carries no zone; NaN when unreadable. */
function utcMs(text: string): number {
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(text) || text === '' ? text : `${text}Z`);
}

/** Quote a value inside an OData string literal. */
function odata(value: string): string {
  return value.replaceAll("'", "''");
}

function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 1000)} s`;
  return `${ms} ms`;
}
