import { ACTION_CATALOGUE } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type { ExecutionContext, ExecutionOutcome, ResponseExecutor } from '../core/ports.js';

/** What the dry-run executor would have done. */
export interface DryRunRecord {
  incidentId: string;
  actionId: string;
  type: ActionRecord['type'];
  target: ActionRecord['target'];
  approvedBy: string;
  at: string;
}

/** Records what would have been done and calls nothing (local mode and `DRY_RUN=true`). */
export class DryRunExecutor implements ResponseExecutor {
  readonly dryRun = true;
  readonly records: DryRunRecord[] = [];

  async execute(action: ActionRecord, context: ExecutionContext): Promise<ExecutionOutcome> {
    this.records.push({
      incidentId: action.incidentId,
      actionId: action.id,
      type: action.type,
      target: structuredClone(action.target),
      approvedBy: context.approvedBy,
      at: new Date().toISOString(),
    });
    return {
      ok: true,
      detail: `Dry run: ${ACTION_CATALOGUE[action.type].label} recorded, nothing was called`,
    };
  }
}
