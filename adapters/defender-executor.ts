import type { TokenCredential } from '@azure/identity';
import { z } from 'zod';
import type { ActionType } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type { ExecutionContext, ExecutionOutcome, ResponseExecutor } from '../core/ports.js';
import {
  type AdapterLogger,
  ApiClient,
  apiError,
  describeFailure,
  type HttpResult,
  type RetryOptions,
} from './defender-http.js';

/** Options of `DefenderExecutor`. */
export interface DefenderExecutorOptions extends RetryOptions {
  credential: TokenCredential;
  /** `DEFENDER_API_URL`, may carry a path prefix. */
  defenderApiUrl: string;
  /** `GRAPH_API_URL`, may carry a path prefix. */
  graphApiUrl: string;
  /** Wait between two polls of a machine action (default 5 s). */
  pollIntervalMs?: number;
  /** Longest wait for a machine action to finish before the outcome is a failure (default 10 min). */
  maxPollMs?: number;
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
  verb: string;
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
    verb: 'quick antivirus scan',
    extra: () => ({ ScanType: 'Quick' }),
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
  relatedFileInfo: z.looseObject({ fileIdentifier: z.string().nullish() }).nullish(),
});
type MachineAction = z.infer<typeof machineActionSchema>;

const machineActionListSchema = z.looseObject({ value: z.array(z.unknown()) });

const analyzedEmailListSchema = z.looseObject({
  value: z.array(
    z.looseObject({
      id: z.string().min(1),
      networkMessageId: z.string().nullish(),
      recipientEmailAddress: z.string().nullish(),
    }),
  ),
  '@odata.nextLink': z.string().nullish(),
});

type Outcome = ExecutionOutcome;
const fail = (reason: string): Outcome => ({ ok: false, reason });

/**
 * Carries approved actions out against Microsoft Defender for Endpoint and Microsoft Graph. MDE actions
 * are created once (a 400 "already in progress" adopts the pending action; after a 5xx or network error
 * Defender is asked for a pending action before anything is sent again) and polled to the end. Every
 * failure is returned as an outcome, never thrown, and every wait is bounded.
 */
export class DefenderExecutor implements ResponseExecutor {
  readonly dryRun = false;
  private readonly mde: ApiClient;
  private readonly graph: ApiClient;
  private readonly pollIntervalMs: number;
  private readonly maxPollMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly emailSearchDays: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly logger: AdapterLogger | undefined;

  constructor(options: DefenderExecutorOptions) {
    const { credential, defenderApiUrl, graphApiUrl, ...rest } = options;
    this.mde = new ApiClient(credential, { service: 'Defender', baseUrl: defenderApiUrl }, rest);
    this.graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.maxPollMs = options.maxPollMs ?? 10 * 60_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.emailSearchDays = options.emailSearchDays ?? 30;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
  }

  async execute(action: ActionRecord, context: ExecutionContext): Promise<ExecutionOutcome> {
    const type = action.type;
    if (isMdeAction(type)) return this.runMachineAction(action, MDE_ACTIONS[type], context);
    switch (type) {
      case 'releaseFileFromQuarantine':
        return fail(
          'Defender has no API to release a file from quarantine: an expert does it in the Defender portal (Action center > History > Undo) and marks it done',
        );
      case 'forcePasswordReset':
        return this.patchUser(
          action,
          { passwordProfile: { forceChangePasswordNextSignIn: true } },
          'User-PasswordProfile.ReadWrite.All',
          'password change required at next sign-in',
        );
      case 'disableUser':
        return this.patchUser(
          action,
          { accountEnabled: false },
          'User.EnableDisableAccount.All',
          'account disabled (accountEnabled false)',
        );
      case 'enableUser':
      case 'unsuspendUser':
        return this.patchUser(
          action,
          { accountEnabled: true },
          'User.EnableDisableAccount.All',
          'account enabled (accountEnabled true)',
        );
      case 'revokeUserTokens':
        return this.revokeSessions(action);
      case 'suspendUser':
        return this.suspendUser(action);
      case 'softDeleteEmails':
        return this.softDeleteEmails(action, context);
    }
  }

  // ---- Defender for Endpoint machine actions ----

  private async runMachineAction(
    action: ActionRecord,
    spec: MdeSpec,
    context: ExecutionContext,
  ): Promise<Outcome> {
    if (action.externalId) {
      this.logger?.info(
        { incidentId: action.incidentId, actionId: action.id, machineActionId: action.externalId },
        'resuming Defender machine action',
      );
      return this.follow(action.externalId, spec, context, undefined);
    }
    // The machine the exclusion check looked up in Defender is the one acted on.
    const machineId =
      action.resolved?.deviceId ?? action.target.deviceId ?? deviceIdFromEvidence(action, context);
    if (!machineId) return fail('the action names no Defender device id, so nothing was sent');
    if (action.type === 'stopAndQuarantineFile' && !action.target.sha1) {
      return fail('the action names no file SHA-1, so nothing was sent');
    }
    const started = await this.createMachineAction(machineId, action, spec, context);
    if (!started.ok) return started;
    await this.safely(() => context.checkpoint(started.machineAction.id), 'checkpoint');
    return this.follow(started.machineAction.id, spec, context, started.machineAction);
  }

  /** POST the action once; re-POST after a fault only when Defender shows no pending action for it. */
  private async createMachineAction(
    machineId: string,
    action: ActionRecord,
    spec: MdeSpec,
    context: ExecutionContext,
  ): Promise<{ ok: true; machineAction: MachineAction } | { ok: false; reason: string }> {
    const body = {
      Comment: `MDR: ${spec.verb} per incident ${action.incidentId} (approved by ${context.approvedBy})`,
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
        // The previous POST may have reached Defender: never send a second one blindly.
        const pending = await this.findPending(machineId, spec, action);
        if (!pending.ok) return pending;
        if (pending.machineAction) return { ok: true, machineAction: pending.machineAction };
        await this.sleep(Math.min(this.retryBaseMs * 2 ** (attempt - 1), 30_000));
      }
      const result = await this.mde.send({
        method: 'POST',
        path: `/api/machines/${encodeURIComponent(machineId)}/${spec.path}`,
        body,
        retryUnsafe: false,
      });
      if (result.kind === 'response' && (result.status === 200 || result.status === 201)) {
        const parsed = machineActionSchema.safeParse(result.body);
        if (!parsed.success) {
          return {
            ok: false,
            reason: `Defender accepted ${what} but its answer had no machine action id and status; check Action center in the Defender portal`,
          };
        }
        return { ok: true, machineAction: parsed.data };
      }
      if (result.kind === 'response' && result.status === 400 && isAlreadyInProgress(result.body)) {
        const pending = await this.findPending(machineId, spec, action);
        if (!pending.ok) return pending;
        if (pending.machineAction) return { ok: true, machineAction: pending.machineAction };
        return {
          ok: false,
          reason: `Defender says a ${spec.type} action is already in progress on device ${machineId}, but it could not be found to follow; check Action center in the Defender portal`,
        };
      }
      const transient = result.kind === 'network' || (result.kind === 'response' && result.status >= 500);
      if (!transient) return { ok: false, reason: describeFailure('Defender', result, wording) };
      this.logger?.warn(
        { machineId, type: spec.type, status: result.kind === 'response' ? result.status : undefined },
        'Defender action request failed; checking for a pending action before retrying',
      );
      last = result;
    }
    const pending = await this.findPending(machineId, spec, action);
    if (!pending.ok) return pending;
    if (pending.machineAction) return { ok: true, machineAction: pending.machineAction };
    const lastAnswer = describeFailure(
      'Defender',
      last ?? { kind: 'network', message: 'no answer', attempts: 0 },
      wording,
    );
    return {
      ok: false,
      reason: `${lastAnswer}; gave up after ${this.maxRetries + 1} requests and no pending ${spec.type} action was found`,
    };
  }

  /** The open (Pending, then InProgress) machine action of this type on the device, if any. */
  private async findPending(
    machineId: string,
    spec: MdeSpec,
    action: ActionRecord,
  ): Promise<{ ok: true; machineAction?: MachineAction } | { ok: false; reason: string }> {
    for (const status of ['Pending', 'InProgress']) {
      const result = await this.mde.send({
        method: 'GET',
        path: '/api/machineactions',
        query: {
          $filter: `machineId eq '${odata(machineId)}' and type eq '${spec.type}' and status eq '${status}'`,
        },
      });
      if (!(result.kind === 'response' && result.ok)) {
        return {
          ok: false,
          reason: `could not check whether Defender already has this ${spec.type} action, so it was not sent again: ${describeFailure(
            'Defender',
            result,
            {
              permission: POLL_PERMISSION,
              notFound: `device ${machineId} was not found in Defender`,
              what: 'GET machineactions',
            },
          )}`,
        };
      }
      const list = machineActionListSchema.safeParse(result.body);
      const found = (list.success ? list.data.value : [])
        .map((item) => machineActionSchema.safeParse(item))
        .flatMap((p) => (p.success ? [p.data] : []))
        .find((ma) => sameCase(ma.status, status) && sameFile(ma, action));
      if (found) {
        this.logger?.info({ machineId, machineActionId: found.id }, 'adopting pending Defender action');
        return { ok: true, machineAction: found };
      }
    }
    return { ok: true };
  }

  /** Poll a machine action until it ends or the bounded wait is over. */
  private async follow(
    id: string,
    spec: MdeSpec,
    context: ExecutionContext,
    first: MachineAction | undefined,
  ): Promise<Outcome> {
    const started = this.now();
    const maxPolls = Math.ceil(this.maxPollMs / Math.max(1, this.pollIntervalMs));
    let current = first;
    let shown: string | undefined;
    let lastProblem: string | undefined;
    let polls = 0;
    // A resumed action has nothing to show yet: ask Defender at once.
    let fetchNow = current === undefined;
    for (;;) {
      if (!fetchNow) {
        if (current) {
          const status = current.status;
          if (TERMINAL.has(status.toLowerCase())) return finished(current, spec);
          if (status !== shown) {
            shown = status;
            await this.safely(() => context.progress(`Defender: ${status}`), 'progress');
          }
        }
        if (this.now() - started >= this.maxPollMs || polls >= maxPolls) break;
        await this.sleep(this.pollIntervalMs);
        polls++;
      }
      fetchNow = false;
      const result = await this.mde.send({
        method: 'GET',
        path: `/api/machineactions/${encodeURIComponent(id)}`,
      });
      if (result.kind === 'response' && result.ok) {
        const parsed = machineActionSchema.safeParse(result.body);
        if (parsed.success) current = parsed.data;
        lastProblem = parsed.success ? undefined : 'Defender answered without a machine action status';
        continue;
      }
      const wording = {
        permission: POLL_PERMISSION,
        notFound: `Defender machine action ${id} was not found`,
        what: 'GET machineactions',
      };
      const passing =
        result.kind === 'network' ||
        (result.kind === 'response' && (result.status === 429 || result.status >= 500));
      // The action exists already: a permanent refusal ends the wait, a passing fault does not.
      if (!passing) {
        return fail(
          `${describeFailure('Defender', result, wording)}; follow action ${id} in the Defender portal`,
        );
      }
      lastProblem = describeFailure('Defender', result, wording);
    }
    const status = current?.status ?? 'unknown';
    const also = lastProblem ? ` (last poll: ${lastProblem})` : '';
    return fail(
      `${spec.type} still ${status} after ${formatDuration(this.maxPollMs)}; follow it in the Defender portal (Action center), action id ${id}${also}`,
    );
  }

  // ---- Microsoft Graph user actions ----

  private async patchUser(
    action: ActionRecord,
    body: Record<string, unknown>,
    permission: string,
    done: string,
  ): Promise<Outcome> {
    const user = userRef(action);
    if (!user) return fail('the action names no user id or UPN, so nothing was sent');
    const result = await this.graph.send({
      method: 'PATCH',
      path: `/v1.0/users/${encodeURIComponent(user)}`,
      body,
    });
    if (!(result.kind === 'response' && result.ok)) {
      return fail(
        describeFailure('Microsoft Graph', result, {
          permission,
          notFound: `user ${user} was not found in Microsoft Entra ID`,
          what: 'PATCH user',
        }),
      );
    }
    return { ok: true, detail: `${user}: ${done}` };
  }

  private async revokeSessions(action: ActionRecord): Promise<Outcome> {
    const user = userRef(action);
    if (!user) return fail('the action names no user id or UPN, so nothing was sent');
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

  private async suspendUser(action: ActionRecord): Promise<Outcome> {
    const disabled = await this.patchUser(
      action,
      { accountEnabled: false },
      'User.EnableDisableAccount.All',
      'sign-in blocked (accountEnabled false)',
    );
    if (!disabled.ok) return disabled;
    const revoked = await this.revokeSessions(action);
    if (!revoked.ok) return fail(`${disabled.detail}, but revoking sessions failed: ${revoked.reason}`);
    return { ok: true, detail: `${disabled.detail}; sign-in sessions revoked` };
  }

  // ---- Microsoft Graph email remediation ----

  private async softDeleteEmails(action: ActionRecord, context: ExecutionContext): Promise<Outcome> {
    if (action.externalId) {
      // Sent before a restart: a second remediation would only duplicate it in Action center.
      return {
        ok: true,
        detail: `soft delete submitted before a restart; follow it in Action center: ${action.externalId}`,
      };
    }
    const { networkMessageId, recipient } = action.target;
    if (!networkMessageId) return fail('the action names no network message id, so nothing was sent');
    const found = await this.findAnalyzedEmails(networkMessageId, recipient);
    if (!found.ok) return found;
    if (found.ids.length === 0) {
      return fail(
        `no analyzed email with network message id ${networkMessageId}${recipient ? ` for ${recipient}` : ''} in the last ${this.emailSearchDays} days, so nothing was deleted`,
      );
    }
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
        analyzedEmails: found.ids.map((id) => ({ id })),
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
      return fail(
        unsure
          ? `${reason}; it may still have been accepted: check Action center > History in the Defender portal before doing it by hand`
          : reason,
      );
    }
    const location = result.headers.get('location') ?? undefined;
    if (location) await this.safely(() => context.checkpoint(location), 'checkpoint');
    const where = location ? `; follow it in Action center: ${location}` : '';
    return {
      ok: true,
      detail: `soft delete of ${found.ids.length} email(s) submitted to Defender${where}`,
    };
  }

  private async findAnalyzedEmails(
    networkMessageId: string,
    recipient: string | undefined,
  ): Promise<{ ok: true; ids: string[] } | { ok: false; reason: string }> {
    const end = new Date(this.now());
    const start = new Date(end.getTime() - this.emailSearchDays * 86_400_000);
    const ids: string[] = [];
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
        ids.push(email.id);
      }
      const link = parsed.data['@odata.nextLink'] ?? undefined;
      next = link && this.graph.sameOrigin(link) ? link : undefined;
    }
    return { ok: true, ids };
  }

  /** Progress and checkpoints are bookkeeping: a failure there must not abandon a running action. */
  private async safely(step: () => Promise<void>, what: string): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.logger?.warn({ error: error instanceof Error ? error.message : String(error) }, `${what} failed`);
    }
  }
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

function deviceIdFromEvidence(action: ActionRecord, context: ExecutionContext): string | undefined {
  const name = action.target.deviceName?.toLowerCase();
  if (!name) return undefined;
  return context.incident.devices.find((d) => d.dnsName?.toLowerCase() === name)?.id;
}

/** The user to act on: the Entra object id the exclusion check resolved, else what the action names. */
function userRef(action: ActionRecord): string | undefined {
  return action.resolved?.userId ?? action.target.userId ?? action.target.upn;
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
