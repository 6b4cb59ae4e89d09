import { hasApi } from './actions.js';
import { assetOf } from './asset-name.js';
import { weighExclusions } from './decide.js';
import { type ActionRef, type Actor, transition } from './decisions.js';
import { StoreUnavailableError } from './errors.js';
import { type DecisionSubject, type ExclusionDecision, resolveSubject } from './exclusions.js';
import type { ActionRecord, ExclusionChanges, IncidentRecord } from './model.js';
import type { CasResult, CoreDeps, ExecutionOutcome, SubmitResult } from './ports.js';
import { taskOpened } from './remind-task.js';

const SYSTEM: Actor = { id: 'system', platform: 'system' };

/**
 * How long an execution token holds without renewal before another run may take the action over. Longer
 * than one request with its time limit: a holder renews it before each request it sends (see `claim`).
 */
export const EXECUTION_LEASE_MS = 60_000;

/** Card text while an action waits for a free Defender slot (the time is added after it). */
export const RATE_LIMITED = 'Queued by Defender rate limit';

export type ExecuteResult = { status: 'done'; action: ActionRecord } | { status: 'skipped'; reason: string };

export interface ExecuteOptions {
  /** This run's execution token; random per job run (a stalled duplicate of the job gets another). */
  token?: string;
  /** Lease bound (default EXECUTION_LEASE_MS). */
  leaseMs?: number;
}

/**
 * Submit an approved action (the durable job's body) and return: a remote operation is then followed
 * by `followActions`, never waited for here. Sent at most once: the move to `executing` is a
 * compare-and-set that writes this run's execution token, and only the token's holder may send. A run
 * that finds the action `executing` sends nothing while the holder's lease is fresh, and after it went
 * stale takes the action over with another compare-and-set and adopts the remote operation an earlier
 * run may have created before sending anything. Exclusions are checked once more first, and again right
 * after the move to `executing` when they changed in between.
 */
export async function executeAction(
  deps: CoreDeps,
  ref: ActionRef,
  options: ExecuteOptions = {},
): Promise<ExecuteResult> {
  const token = options.token ?? newToken();
  const leaseMs = options.leaseMs ?? EXECUTION_LEASE_MS;
  const loaded = await deps.store.loadForDecision(ref.incidentId, ref.actionId);
  if (!loaded) return { status: 'skipped', reason: 'no such incident or action' };
  const { incident } = loaded;
  let action = loaded.action;
  let resume: boolean;

  if (action.state === 'approved') {
    const decision = await mayRun(deps, action, incident, loaded.exclusionChanges);
    if (decision.kind !== 'allowed') return notRun(deps, ref, action, decision, '');
    if (!hasApi(action.type)) {
      const moved = await transition(
        deps,
        action,
        'expertTask',
        {},
        { actor: SYSTEM, event: 'execute', detail: 'expertTask: no API, guided steps for the expert' },
      );
      await deps.notifier.incidentChanged(ref.incidentId);
      return moved.ok
        ? { status: 'done', action: moved.action }
        : { status: 'skipped', reason: 'changed meanwhile' };
    }
    const startedAt = deps.clock.now().toISOString();
    const started = await transition(
      deps,
      action,
      'executing',
      {
        progress: 'Starting',
        dryRun: deps.executor.dryRun,
        resolved: decision.subject,
        executionToken: token,
        leaseAt: startedAt,
        executingSince: startedAt,
      },
      { actor: SYSTEM, event: 'execute', detail: deps.executor.dryRun ? 'executing (dry run)' : 'executing' },
    );
    if (!started.ok) return { status: 'skipped', reason: 'another worker took it' };
    action = started.action;
    resume = false;
    // An exclusion added after the check above, before the move to `executing`, must still stop it:
    // now that no one else can start the action, read the exclusions' version again (one GET; it lives
    // in another slot than the action, so no script can read both on Redis Cluster) and, if it moved,
    // check again with the rules now in force before anything is called.
    // A customer's own run is not bound by the exclusions: nothing to read again.
    const latest = action.decidedAs === 'customer' ? null : await deps.store.getExclusionChanges();
    if (latest && latest.version !== loaded.exclusionChanges.version) {
      const stop = await checkAgain(deps, ref, action, incident, latest, decision.subject);
      if (stop) return stop;
    }
    await deps.notifier.incidentChanged(ref.incidentId);
  } else if (action.state === 'executing') {
    const taken = await takeOver(deps, action, token, leaseMs);
    if (!taken.ok) return { status: 'skipped', reason: taken.reason };
    action = taken.action;
    resume = taken.resume;
    // Nothing was sent for it yet and it may have waited long (a rate limit): exclusions added meanwhile
    // still stop it, as they would have before its first start.
    if (!resume) {
      const stop = await checkAgain(
        deps,
        ref,
        action,
        incident,
        await deps.store.getExclusionChanges(),
        action.resolved,
      );
      if (stop) return stop;
    }
  } else {
    return { status: 'skipped', reason: `action is ${action.state}` };
  }
  return submit(deps, ref, incident, action, { token, leaseMs, resume });
}

/**
 * Take an `executing` action that has no remote operation yet: at once when nobody holds it (released
 * after a rate limit), else only once its holder's lease is stale. The compare-and-set swaps the token,
 * so the stale holder can no longer send (its `claim` fails).
 */
async function takeOver(
  deps: CoreDeps,
  action: ActionRecord,
  token: string,
  leaseMs: number,
): Promise<{ ok: true; action: ActionRecord; resume: boolean } | { ok: false; reason: string }> {
  if (action.externalId) return { ok: false, reason: 'already submitted: followed by its remote id' };
  const now = deps.clock.now();
  const held = action.executionToken !== undefined;
  if (held) {
    const since = Date.parse(action.leaseAt ?? action.updatedAt);
    if (now.getTime() - since < leaseMs) return { ok: false, reason: 'another run holds it' };
  }
  // A stopped holder may have sent the request: look for it before sending. Released unsent: no need.
  const resume = held || !action.unsent;
  const taken = await transition(
    deps,
    action,
    'executing',
    { executionToken: token, leaseAt: now.toISOString(), unsent: undefined },
    {
      actor: SYSTEM,
      event: 'execute',
      detail: held ? 'taken over from a run that stopped (stale lease)' : 'resumed',
    },
  );
  if (!taken.ok) return { ok: false, reason: 'another run took it' };
  return { ok: true, action: taken.action, resume };
}

/** Exclusions as they are now: a stop (customer task or failure) when they no longer allow the action. */
async function checkAgain(
  deps: CoreDeps,
  ref: ActionRef,
  action: ActionRecord,
  incident: IncidentRecord,
  changes: ExclusionChanges,
  subject: DecisionSubject | undefined,
): Promise<ExecuteResult | null> {
  const again = await mayRun(deps, action, incident, changes);
  if (again.kind !== 'allowed')
    return notRun(deps, ref, action, again, ' (exclusions changed while it was being started)');
  if (!sameSubject(again.subject, subject)) {
    const asset = assetOf(action, incident);
    const reason = `${asset} resolved to another identity while the action was being started`;
    return notRun(deps, ref, action, { kind: 'unverifiable', asset, reason }, '');
  }
  return null;
}

/** Send (or adopt) the request as the token's holder, record what came of it, and return. */
async function submit(
  deps: CoreDeps,
  ref: ActionRef,
  incident: IncidentRecord,
  held: ActionRecord,
  run: { token: string; leaseMs: number; resume: boolean },
): Promise<ExecuteResult> {
  // This run alone writes the action while it holds the token; `action` tracks the latest version.
  let action = held;
  const claim = async (): Promise<boolean> => {
    const now = deps.clock.now();
    if (action.executionToken !== run.token) return false;
    if (now.getTime() - Date.parse(action.leaseAt ?? action.updatedAt) < run.leaseMs / 3) return true;
    const renewed = await transition(
      deps,
      action,
      'executing',
      { leaseAt: now.toISOString() },
      { actor: SYSTEM, event: 'progress', detail: 'lease renewed' },
    );
    if (!renewed.ok) return false;
    action = renewed.action;
    return true;
  };
  let result: SubmitResult;
  try {
    result = await deps.executor.submit(action, {
      incident,
      approvedBy: action.decidedBy ?? 'unknown',
      resume: run.resume,
      claim,
    });
  } catch (error) {
    // The store being away is no outcome of the action: the job fails and is run again.
    if (error instanceof StoreUnavailableError) throw error;
    result = {
      kind: 'finished',
      outcome: { ok: false, reason: error instanceof Error ? error.message : String(error) },
    };
  }

  switch (result.kind) {
    case 'abandoned':
      return { status: 'skipped', reason: result.reason };
    case 'submitted': {
      const recorded = await transition(
        deps,
        action,
        'executing',
        {
          externalId: result.externalId,
          ...(result.items ? { remoteItems: result.items } : {}),
          submittedAt: deps.clock.now().toISOString(),
          remoteStatus: result.status,
          progress: result.progress,
        },
        { actor: SYSTEM, event: 'progress', detail: `remote operation ${result.externalId}` },
      );
      await deps.notifier.incidentChanged(ref.incidentId);
      // Lost: another run took the action over meanwhile; it adopts this operation before sending.
      return recorded.ok
        ? { status: 'done', action: recorded.action }
        : { status: 'skipped', reason: 'changed meanwhile' };
    }
    case 'throttled': {
      const at = new Date(deps.clock.now().getTime() + Math.max(0, result.retryAfterMs));
      const released = await transition(
        deps,
        action,
        'executing',
        {
          executionToken: undefined,
          leaseAt: undefined,
          unsent: !result.maybeSent,
          progress: `${RATE_LIMITED} (next slot at ${at.toISOString().slice(11, 19)} UTC)`,
        },
        { actor: SYSTEM, event: 'progress', detail: `queued: ${result.reason}` },
      );
      if (!released.ok) return { status: 'skipped', reason: 'changed meanwhile' };
      await deps.jobs.schedule({
        kind: 'execute',
        ...ref,
        retry: released.action.version,
        delayMs: Math.max(0, result.retryAfterMs),
      });
      await deps.notifier.incidentChanged(ref.incidentId);
      return { status: 'done', action: released.action };
    }
    case 'finished': {
      const final = await finish(deps, action, result.outcome, result.externalId);
      await deps.notifier.incidentChanged(ref.incidentId);
      return final.ok
        ? { status: 'done', action: final.action }
        : { status: 'skipped', reason: 'changed meanwhile' };
    }
  }
}

/** Move an `executing` action to its final state with the outcome, as one audited compare-and-set. */
export function finish(
  deps: Pick<CoreDeps, 'store' | 'clock'>,
  action: ActionRecord,
  outcome: ExecutionOutcome,
  externalId?: string,
): Promise<CasResult> {
  const ids = externalId ? { externalId } : {};
  return outcome.ok
    ? transition(
        deps,
        action,
        'succeeded',
        { result: outcome.detail, progress: undefined, ...ids },
        { actor: SYSTEM, event: 'execute', detail: `succeeded: ${outcome.detail}` },
      )
    : transition(
        deps,
        action,
        'failed',
        { error: outcome.reason, progress: undefined, ...ids },
        { actor: SYSTEM, event: 'execute', outcome: 'failed', detail: `failed: ${outcome.reason}` },
      );
}

/**
 * May the action run, and on which identity? An expert's decision is bound by the exclusions in force;
 * a customer admin's own run (`decidedAs: 'customer'`) is not, but its target is still resolved live.
 */
async function mayRun(
  deps: CoreDeps,
  action: ActionRecord,
  incident: IncidentRecord,
  changes: ExclusionChanges,
): Promise<ExclusionDecision> {
  if (action.decidedAs === 'customer') return resolveSubject(action, incident, deps.directory);
  return weighExclusions(deps, action, incident, changes);
}

/** A random execution token. */
function newToken(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * The asset may not be acted on (excluded, or the exclusions cannot be verified): the executor is not
 * called. Excluded: a customer task (with its reminder). Unverifiable: failed, so an expert may retry.
 */
async function notRun(
  deps: CoreDeps,
  ref: ActionRef,
  action: ActionRecord,
  decision: Exclude<ExclusionDecision, { kind: 'allowed' }>,
  when: string,
): Promise<ExecuteResult> {
  const moved =
    decision.kind === 'excluded'
      ? await transition(
          deps,
          action,
          'customerPending',
          { excludedBy: decision.rule, progress: undefined, dryRun: undefined },
          {
            actor: SYSTEM,
            event: 'execute',
            outcome: 'refused',
            detail: `asset_excluded: ${decision.rule}; now customerPending${when}`,
          },
        )
      : await transition(
          deps,
          action,
          'failed',
          { error: `Not run: ${decision.reason}`, progress: undefined, dryRun: undefined },
          {
            actor: SYSTEM,
            event: 'execute',
            outcome: 'refused',
            detail: `exclusion_unverifiable: ${decision.reason}${when}`,
          },
        );
  if (moved.ok && moved.action.state === 'customerPending') await taskOpened(deps, ref, moved.action);
  else await deps.notifier.incidentChanged(ref.incidentId);
  return moved.ok
    ? { status: 'done', action: moved.action }
    : { status: 'skipped', reason: 'changed meanwhile' };
}

function sameSubject(a: DecisionSubject | undefined, b: DecisionSubject | undefined): boolean {
  return a?.userId === b?.userId && a?.deviceId === b?.deviceId;
}
