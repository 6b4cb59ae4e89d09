import { z } from 'zod';
import { ACTION_CATALOGUE, SCAN_TYPES, type ScanType } from './actions.js';
import { assetOf } from './asset-name.js';
import { decide, expertsOnly } from './decide.js';
import {
  type ActionRef,
  type Actor,
  type Decision,
  decidedByOf,
  describeHandled,
  transition,
} from './decisions.js';
import type { CoreDeps } from './ports.js';
import { taskOpened } from './remind-task.js';

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
  choices: unknown = {},
): Promise<Decision> {
  const event = 'approve';
  const chosen = approveChoicesSchema.safeParse(choices);
  const scanType = chosen.data?.scanType;
  const asked = await decide(deps, actor, event, ref, {
    gates: [
      () => {
        if (chosen.success) return null;
        const detail = chosen.error.issues
          .map((i) => `${i.path.join('.') || 'choice'}: ${i.message}`)
          .join('; ');
        return { code: 'invalid_choice', message: `not approved: ${detail} (scan type is Quick or Full)` };
      },
      expertsOnly('approve actions'),
    ],
    from: ['proposed'],
    elsewhere: (action, incident) =>
      action.state === 'customerPending' && action.excludedBy
        ? {
            code: 'asset_excluded',
            message: `${assetOf(action, incident)} is excluded by ${action.excludedBy}: this is now a task for your team`,
          }
        : { code: 'already_handled', message: describeHandled(action) },
    check: (action) =>
      scanType && action.type !== 'runAntivirusScan'
        ? {
            code: 'invalid_choice',
            message: `not approved: a scan type is chosen only for an antivirus scan, not for ${ACTION_CATALOGUE[action.type].label.toLowerCase()}`,
          }
        : null,
    weigh: true,
  });
  if (!asked.ok) return asked;
  const { action, verdict } = asked;

  if (verdict.kind === 'excluded') {
    const message = `${verdict.asset} is excluded by ${verdict.rule}: this is now a task for your team`;
    const moved = await transition(
      deps,
      action,
      'customerPending',
      { excludedBy: verdict.rule, blockedReason: undefined },
      { actor, event, outcome: 'refused', detail: `asset_excluded: ${verdict.rule}; now customerPending` },
    );
    if (moved.ok) {
      await taskOpened(deps, ref, moved.action);
      return { ok: false, code: 'asset_excluded', message, action: moved.action };
    }
    return asked.refuse('asset_excluded', message, moved.current ?? action);
  }
  if (verdict.kind === 'unverifiable') {
    const message = `${ACTION_CATALOGUE[action.type].label} ${verdict.asset} was not approved: ${verdict.reason}`;
    if (action.blockedReason !== verdict.reason) {
      const marked = await transition(
        deps,
        action,
        'proposed',
        { blockedReason: verdict.reason },
        { actor, event, outcome: 'refused', detail: `exclusion_unverifiable: ${verdict.reason}` },
      );
      if (marked.ok) {
        await deps.notifier.incidentChanged(ref.incidentId);
        return { ok: false, code: 'exclusion_unverifiable', message, action: marked.action };
      }
    }
    return asked.refuse('exclusion_unverifiable', message, action);
  }

  const result = await asked.settle(
    'approved',
    {
      ...decidedByOf(actor, deps.clock.now().toISOString()),
      blockedReason: undefined,
      ...(action.type === 'runAntivirusScan' ? { scanType: scanType ?? 'Quick' } : {}),
    },
    action.type === 'runAntivirusScan' ? { detail: `approved (${scanType ?? 'Quick'} scan)` } : {},
  );
  if (!result.ok) return result;
  // Sent together: on Redis the execution job and the card updates share one round trip.
  await Promise.all([
    deps.jobs.schedule({ kind: 'execute', ...ref }),
    deps.notifier.incidentChanged(ref.incidentId),
  ]);
  return result;
}
