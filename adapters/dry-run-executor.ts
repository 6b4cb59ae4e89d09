import { ACTION_CATALOGUE } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type { RemoteCheck, ResponseExecutor, SubmitContext, SubmitResult } from '../core/ports.js';

/** What the dry-run executor would have done. */
export interface DryRunRecord {
  incidentId: string;
  actionId: string;
  type: ActionRecord['type'];
  target: ActionRecord['target'];
  approvedBy: string;
  at: string;
}

/** Records what would have been done and calls nothing (local mode and `DRY_RUN=true`); finishes at once. */
export class DryRunExecutor implements ResponseExecutor {
  readonly dryRun = true;
  readonly records: DryRunRecord[] = [];

  async submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    this.records.push({
      incidentId: action.incidentId,
      actionId: action.id,
      type: action.type,
      target: structuredClone(action.target),
      approvedBy: context.approvedBy,
      at: new Date().toISOString(),
    });
    return {
      kind: 'finished',
      outcome: {
        ok: true,
        detail: `Dry run: ${ACTION_CATALOGUE[action.type].label} recorded, nothing was called`,
      },
    };
  }

  /** A dry run submits nothing remote, so there is never anything to ask about. */
  async check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    return actions.map(() => ({ kind: 'unknown', reason: 'dry run: nothing was submitted' }));
  }
}
