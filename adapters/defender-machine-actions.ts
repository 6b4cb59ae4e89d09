import { z } from 'zod';
import type { ActionType, ScanType } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type { ExecutionOutcome, RemoteCheck, SubmitContext, SubmitResult } from '../core/ports.js';
import { backoffMs } from './backoff.js';
import {
  type AdapterLogger,
  type ApiClient,
  type ApiFailure,
  apiError,
  isPassing,
  MAX_BACKOFF_MS,
  odataString,
} from './defender-http.js';
import {
  DEFAULT_THROTTLE_MS,
  type FollowWindow,
  fail,
  finishedWith,
  formatDuration,
  overdue,
  sameCase,
} from './defender-outcomes.js';
import type { SubmissionPacer } from './defender-pacer.js';

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

/** Whether the action is a Defender for Endpoint machine action. */
export const isMachineAction = (type: ActionType): type is MdeActionType => type in MDE_ACTIONS;

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

/** Ids one `GET machineactions` asks about (`$filter=id in (...)`). */
export const CHECK_BATCH = 25;
/** Pages of one machine-action lookup read at most. */
const LOOKUP_PAGES = 10;
/**
 * How much earlier than the action's start (our clock) Defender's clock may date an action this run
 * created: an adopted action must not be older than that.
 */
const CLOCK_SKEW_MS = 5 * 60_000;

type Outcome = ExecutionOutcome;
type Lookup<T> = ({ ok: true } & T) | { ok: false; result: SubmitResult };

/** A machine action Defender created or that was found open, as the core records it. */
function submitted(ma: MachineAction): SubmitResult {
  return { kind: 'submitted', externalId: ma.id, status: ma.status, progress: `Defender: ${ma.status}` };
}

/** What `MachineActions` works with. */
export interface MachineActionsOptions extends FollowWindow {
  mde: ApiClient;
  pacer: SubmissionPacer;
  maxRetries: number;
  retryBaseMs: number;
  sleep: (ms: number) => Promise<void>;
  logger: AdapterLogger | undefined;
}

/**
 * Defender for Endpoint machine actions (`POST /api/machines/{id}/{action}`), created once and then
 * followed by `check`: a 400 "already in progress" adopts the pending action; after a 5xx or network
 * error Defender is asked for a pending action before anything is sent again; on resuming a run that
 * stopped, the action that run created (its comment names this action) is adopted whatever its status,
 * and only when there is none is it sent; every POST first takes a slot of the pacer (Defender's
 * limits) and confirms the run still holds the action.
 */
export class MachineActions {
  /** Defender asked (429) not to be polled before this time. */
  private checksPausedUntil = 0;

  constructor(private readonly options: MachineActionsOptions) {}

  private get mde(): ApiClient {
    return this.options.mde;
  }

  async submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    const spec = MDE_ACTIONS[action.type as MdeActionType];
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
    return this.create(machineId, action, spec, context);
  }

  /** The state of submitted machine actions, CHECK_BATCH per request. */
  async check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const results: RemoteCheck[] = [];
    for (let at = 0; at < actions.length; at += CHECK_BATCH) {
      results.push(...(await this.checkBatch(actions.slice(at, at + CHECK_BATCH))));
    }
    return results;
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
    this.options.logger?.info(
      { incidentId: action.incidentId, actionId: action.id, machineActionId: ma.id, status: ma.status },
      `${why}: adopted the Defender machine action an earlier request sent`,
    );
    return TERMINAL.has(ma.status.toLowerCase()) ? finishedWith(finished(ma, spec), ma.id) : submitted(ma);
  }

  /** POST the action once; re-POST after a fault only when Defender shows no pending action for it. */
  private async create(
    machineId: string,
    action: ActionRecord,
    spec: MdeSpec,
    context: SubmitContext,
  ): Promise<SubmitResult> {
    const { maxRetries, retryBaseMs, pacer } = this.options;
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
    let last: ApiFailure | undefined;
    const sentIf = () => (last ? { maybeSent: true as const } : {});
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      if (last) {
        const found = await this.afterFault(machineId, spec, action, 'retrying after a fault');
        if (found) return found;
        await this.options.sleep(backoffMs(retryBaseMs, attempt - 1, MAX_BACKOFF_MS));
      }
      if (!(await context.claim())) {
        return { kind: 'abandoned', reason: 'another run took the action over; nothing more was sent' };
      }
      const slot = await pacer.take(spec.path);
      if (!slot.ok) {
        return { kind: 'throttled', retryAfterMs: slot.retryAfterMs, reason: slot.reason, ...sentIf() };
      }
      const result = await this.mde.call(
        {
          method: 'POST',
          path: `/api/machines/${encodeURIComponent(machineId)}/${spec.path}`,
          body,
          retryUnsafe: false,
          on429: 'return',
        },
        wording,
      );
      if (result.ok) {
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
      if (result.status === 429) {
        // Refused, so not created: wait as long as Defender asks, on every replica.
        const wait = result.retryAfter ?? DEFAULT_THROTTLE_MS;
        await pacer.pause(spec.path, wait);
        return { kind: 'throttled', retryAfterMs: wait, reason: result.reason, ...sentIf() };
      }
      if (result.status === 400 && isAlreadyInProgress(result.body)) {
        const pending = await this.findPending(machineId, spec, action, true);
        if (!pending.ok) return pending.result;
        if (pending.machineAction) return submitted(pending.machineAction);
        return finishedWith(
          fail(
            `Defender says a ${spec.type} action is already in progress on device ${machineId}, but it could not be found to follow; check Action center in the Defender portal`,
          ),
        );
      }
      if (!isPassing(result)) return finishedWith(fail(result.reason));
      this.options.logger?.warn(
        { machineId, type: spec.type, status: result.status },
        'Defender action request failed; checking for a pending action before retrying',
      );
      last = result;
    }
    const found = await this.afterFault(machineId, spec, action, 'after the last attempt');
    if (found) return found;
    const lastAnswer = last?.reason ?? `Defender could not be reached for ${what} (no answer)`;
    return finishedWith(
      fail(
        `${lastAnswer}; gave up after ${maxRetries + 1} requests and no pending ${spec.type} action was found`,
      ),
    );
  }

  /**
   * After a POST that may have reached Defender: this action's own machine action, whatever its status
   * (what it created may even have ended), else an open one of its type to adopt; undefined when there is
   * none, so the caller may send (or give up). Never sends a second one blindly.
   */
  private async afterFault(
    machineId: string,
    spec: MdeSpec,
    action: ActionRecord,
    why: string,
  ): Promise<SubmitResult | undefined> {
    const adopted = await this.adoptOwn(machineId, spec, action, why);
    if (adopted) return adopted;
    const pending = await this.findPending(machineId, spec, action, true);
    if (!pending.ok) return pending.result;
    return pending.machineAction ? submitted(pending.machineAction) : undefined;
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
  ): Promise<Lookup<{ machineAction?: MachineAction }>> {
    const marker = actionMarker(action);
    const incident = ` per incident ${action.incidentId}`;
    const sameIncident = (ma: MachineAction) =>
      [' ', ','].some((end) => ma.requestorComment?.includes(`${incident}${end}`));
    for (const status of ['Pending', 'InProgress']) {
      const listed = await this.list(
        `machineId eq ${odataString(machineId)} and type eq '${spec.type}' and status eq '${status}'`,
        machineId,
        spec,
        maybeSent,
      );
      if (!listed.ok) return listed;
      const open = listed.machineActions.filter((ma) => sameCase(ma.status, status) && sameFile(ma, action));
      const found =
        open.find((ma) => ma.requestorComment?.includes(marker)) ?? open.find(sameIncident) ?? open[0];
      if (found) {
        this.options.logger?.info(
          { machineId, machineActionId: found.id },
          'adopting pending Defender action',
        );
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
  ): Promise<Lookup<{ machineAction?: MachineAction }>> {
    const listed = await this.list(
      `machineId eq ${odataString(machineId)} and type eq '${spec.type}'`,
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
  private async list(
    filter: string,
    machineId: string,
    spec: MdeSpec,
    maybeSent: boolean,
  ): Promise<Lookup<{ machineActions: MachineAction[] }>> {
    const wording = {
      permission: POLL_PERMISSION,
      notFound: `device ${machineId} was not found in Defender`,
      what: 'GET machineactions',
    };
    const machineActions: MachineAction[] = [];
    let next: string | undefined;
    for (let page = 0; page < LOOKUP_PAGES; page++) {
      const result = await this.mde.call(
        {
          method: 'GET',
          path: next ?? '/api/machineactions',
          ...(next ? {} : { query: { $filter: filter } }),
          on429: 'return',
        },
        wording,
      );
      if (!result.ok && result.status === 429) {
        return {
          ok: false,
          result: {
            kind: 'throttled',
            retryAfterMs: result.retryAfter ?? DEFAULT_THROTTLE_MS,
            reason: result.reason,
            // A request of an earlier attempt may have reached Defender: the next run looks again.
            ...(maybeSent ? { maybeSent: true } : {}),
          },
        };
      }
      if (!result.ok) {
        return {
          ok: false,
          result: finishedWith(
            fail(
              `could not check whether Defender already has this ${spec.type} action, so it was not sent again: ${result.reason}`,
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
    if (this.options.now() < this.checksPausedUntil) {
      problem = 'Defender asked to wait (429)';
    } else {
      const result = await this.mde.call(
        {
          method: 'GET',
          path: '/api/machineactions',
          query: { $filter: `id in (${ids.map(odataString).join(',')})` },
          on429: 'return',
          retries: 0,
        },
        wording,
      );
      if (result.ok) {
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
          if (overdue(action, this.options)) {
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
      problem = result.reason;
      if (!isPassing(result, true)) {
        // The actions exist already: a permanent refusal ends the wait, a passing fault does not.
        return actions.map((action) => ({
          kind: 'finished',
          outcome: fail(`${problem}; follow action ${action.externalId} in the Defender portal`),
        }));
      }
      if (result.status === 429) {
        this.checksPausedUntil = this.options.now() + (result.retryAfter ?? DEFAULT_THROTTLE_MS);
      }
    }
    return actions.map((action): RemoteCheck => {
      if (!overdue(action, this.options)) return { kind: 'unknown', reason: problem };
      const spec = MDE_ACTIONS[action.type as MdeActionType];
      return {
        kind: 'finished',
        outcome: this.tooLong(action, spec, action.remoteStatus ?? 'unknown', problem),
      };
    });
  }

  private tooLong(action: ActionRecord, spec: MdeSpec, status: string, lastProblem?: string): Outcome {
    const also = lastProblem ? ` (last poll: ${lastProblem})` : '';
    return fail(
      `${spec.type} still ${status} after ${formatDuration(this.options.maxPollMs)}; follow it in the Defender portal (Action center), action id ${action.externalId}${also}`,
    );
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

/**
 * What the request's comment says of the action it carries out (" per incident 48213, action act-1 (",
 * from "MDR: isolate per incident 48213, action act-1 (approved by ...)"): ids hold no space, comma or
 * parenthesis, so the marker of `act-1` is not part of the one of `act-10`.
 */
function actionMarker(action: ActionRecord): string {
  return ` per incident ${action.incidentId}, action ${action.id} (`;
}

function isAlreadyInProgress(body: unknown): boolean {
  const { code, message } = apiError(body);
  return code === 'ActiveRequestAlreadyExists' || /already in progress/i.test(message ?? '');
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

/** An ISO time Defender gives in UTC, read as UTC even when it carries no zone; NaN when unreadable. */
function utcMs(text: string): number {
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(text) || text === '' ? text : `${text}Z`);
}
