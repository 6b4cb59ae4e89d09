import { describe, expect, it } from 'vitest';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { ACTION_STATES, type ActionState } from '../../../core/actions.js';
import { incidentState, SAMPLE_NOW } from '../../support/incident-factory.js';

/** act-1 of the sample (isolate a workstation, "beaconing to known C2") in `state`, as its card line shows it. */
function isolationLine(state: ActionState) {
  const view = buildIncidentView(incidentState({ states: { 'act-1': { state } } }), { now: SAMPLE_NOW });
  const line = view.groups.flatMap((g) => g.items).find((i) => i.actionId === 'act-1');
  if (!line) throw new Error(`no line for act-1 in state ${state}`);
  return line;
}

describe('action line', () => {
  it('says why an action was proposed only while it is still to be carried out', () => {
    const withWhy = ACTION_STATES.filter((state) =>
      isolationLine(state).details.includes('Why: beaconing to known C2'),
    );

    expect(withWhy.sort()).toEqual(['approved', 'customerPending', 'expertTask', 'proposed']);
  });
});
