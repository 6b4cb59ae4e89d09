import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTION_STATES, type ActionState } from '../../../core/actions.js';
import type { ActionRecord } from '../../../core/model.js';
import { factsNeedActions, factsOf } from '../../../core/webhook-events.js';
import { actionRecord } from '../../support/store-fixtures.js';

const state = fc.constantFrom(...ACTION_STATES);

describe('factsNeedActions', () => {
  it('is false only for writes whose facts are the same whatever the incident’s other actions are', () => {
    fc.assert(
      fc.property(
        fc.option(state, { nil: null }),
        state,
        fc.array(state, { maxLength: 6 }),
        (before, after, others) => {
          const written: ActionRecord = { ...actionRecord('7', 'act-0'), state: after, version: 2 };
          const actions = [
            { id: 'act-0', version: 2, state: after },
            ...others.map((s: ActionState, i) => ({ id: `act-${i + 1}`, version: 1, state: s })),
          ];
          const full = factsOf({ changed: [{ before, after: written }], actions });
          const bare = factsOf({ changed: [{ before, after: written }], actions: [] });
          if (!factsNeedActions(written)) {
            expect(full).toEqual(bare);
            expect(full).toEqual([]);
          }
        },
      ),
    );
  });

  it('leaves the actions out for an approval, a start and a progress note, and keeps them for an end', () => {
    const at = (s: ActionState) => factsNeedActions({ state: s });
    expect(['approved', 'executing'].map((s) => at(s as ActionState))).toEqual([false, false]);
    expect(
      ['succeeded', 'failed', 'rejected', 'customerPending', 'doneByCustomer'].map((s) =>
        at(s as ActionState),
      ),
    ).toEqual([true, true, true, true, true]);
  });
});
