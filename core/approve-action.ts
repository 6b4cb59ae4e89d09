import { z } from 'zod';
import { ACTION_CATALOGUE, SCAN_TYPES, type ScanType } from './actions.js';
import { assetOf } from './asset-name.js';
import { currentExclusions } from './change-exclusions.js';
import {
  type ActionRef,
  type Actor,
  checkRef,
  type Decision,
  decidedByOf,
  describeHandled,
  refuse,
  transition,
} from './decisions.js';
import { requestBatchEmail } from './email-customer-tasks.js';
import { evaluateExclusion } from './exclusions.js';
import { rolesOf } from './policy.js';
import type { CoreDeps } from './ports.js';
import { scheduleReminder } from './remind-task.js';

/** What the approving expert chose with the approval: the antivirus scan (`runAntivirusScan` only). */
export interface ApproveChoices {
  scanType?: ScanType;
}

/** A choice sent with an approval: only the scan types Defender knows, nothing else. */
export const approveChoicesSchema = z.strictObject({ scanType: z.enum(SCAN_TYPES).optional() });

/**
 * An expert approves a proposed action. Decided from the store and the policy only: the clicker must be
 * an expert, the action still proposed, and its asset not excluded (checked now, failing closed).
 * An action on an asset excluded since ingest becomes a customer task. On success the execution is
 * scheduled as a durable job. A scan type is taken for `runAntivirusScan` only (Quick unless Full is
 * chosen) and recorded on the action, where the executor reads it.
 */
export async function approveAction(
  deps: CoreDeps,
  ref: ActionRef,
  actor: Actor,
  choices: ApproveChoices = {},
): Promise<Decision> {
  const event = 'approve';
  const invalid = await checkRef(deps, actor, event, ref);
  if (invalid) return invalid;
  const chosen = approveChoicesSchema.safeParse(choices);
  if (!chosen.success) {
    const detail = chosen.error.issues.map((i) => `${i.path.join('.') || 'choice'}: ${i.message}`).join('; ');
    return refuse(
      deps,
      actor,
      event,
      ref,
      'invalid_choice',
      `not approved: ${detail} (scan type is Quick or Full)`,
    );
  }
  if (!rolesOf(deps.policy.roles, actor.id).expert) {
    return refuse(
      deps,
      actor,
      event,
      ref,
      'not_expert',
      'only the MDR experts named in the policy may approve actions',
    );
  }
  const loaded = await deps.store.loadForDecision(ref.incidentId, ref.actionId);
  if (!loaded) return refuse(deps, actor, event, ref, 'not_found', 'no such incident or action');
  const { incident, action } = loaded;
  if (action.state === 'customerPending' && action.excludedBy) {
    const message = `${assetOf(action, loaded.incident)} is excluded by ${action.excludedBy}: this is now a task for your team`;
    return refuse(deps, actor, event, ref, 'asset_excluded', message, action);
  }
  if (action.state !== 'proposed') {
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(action), action);
  }
  const scanType = chosen.data.scanType;
  if (scanType && action.type !== 'runAntivirusScan') {
    const message = `not approved: a scan type is chosen only for an antivirus scan, not for ${ACTION_CATALOGUE[action.type].label.toLowerCase()}`;
    return refuse(deps, actor, event, ref, 'invalid_choice', message, action);
  }

  const exclusions = await currentExclusions(deps, loaded.exclusionChanges);
  const decision = await evaluateExclusion(exclusions, action, incident, deps.directory);
  if (decision.kind === 'excluded') {
    const message = `${decision.asset} is excluded by ${decision.rule}: this is now a task for your team`;
    const moved = await transition(
      deps,
      action,
      'customerPending',
      { excludedBy: decision.rule, blockedReason: undefined },
      { actor, event, outcome: 'refused', detail: `asset_excluded: ${decision.rule}; now customerPending` },
    );
    if (moved.ok) {
      await scheduleReminder(deps, ref);
      await requestBatchEmail(deps, ref.incidentId, [moved.action]);
      await deps.notifier.incidentChanged(ref.incidentId);
      return { ok: false, code: 'asset_excluded', message, action: moved.action };
    }
    return refuse(deps, actor, event, ref, 'asset_excluded', message, moved.current ?? action);
  }
  if (decision.kind === 'unverifiable') {
    const message = `${ACTION_CATALOGUE[action.type].label} ${decision.asset} was not approved: ${decision.reason}`;
    if (action.blockedReason !== decision.reason) {
      const marked = await transition(
        deps,
        action,
        'proposed',
        { blockedReason: decision.reason },
        {
          actor,
          event,
          outcome: 'refused',
          detail: `exclusion_unverifiable: ${decision.reason}`,
        },
      );
      if (marked.ok) {
        await deps.notifier.incidentChanged(ref.incidentId);
        return { ok: false, code: 'exclusion_unverifiable', message, action: marked.action };
      }
    }
    return refuse(deps, actor, event, ref, 'exclusion_unverifiable', message, action);
  }

  const now = deps.clock.now().toISOString();
  const result = await transition(
    deps,
    action,
    'approved',
    {
      ...decidedByOf(actor, now),
      blockedReason: undefined,
      ...(action.type === 'runAntivirusScan' ? { scanType: scanType ?? 'Quick' } : {}),
    },
    {
      actor,
      event,
      ...(action.type === 'runAntivirusScan' ? { detail: `approved (${scanType ?? 'Quick'} scan)` } : {}),
    },
  );
  if (!result.ok) {
    const current = result.current ?? action;
    return refuse(deps, actor, event, ref, 'already_handled', describeHandled(current), current);
  }
  // Sent together: on Redis the execution job and the card updates share one round trip.
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
