import { describe, expect, it } from 'vitest';
import { ACTION_STATES, type ActionState } from '../../../core/actions.js';
import { managedStatus } from '../../../core/managed-status.js';
import { canTransition, LIFECYCLE } from '../../../core/state-machine.js';
import { statesBecoming } from '../../../core/tasks.js';

const of = (...states: ActionState[]) => managedStatus(states.map((state) => ({ state })));

describe('managedStatus', () => {
  it('is active while nothing is handled yet', () => {
    expect(of()).toBe('active');
    expect(of('proposed', 'proposed')).toBe('active');
  });

  it('is in progress while an action is proposed, approved, executing or an expert task', () => {
    expect(of('succeeded', 'proposed')).toBe('inProgress');
    expect(of('approved')).toBe('inProgress');
    expect(of('executing', 'customerPending')).toBe('inProgress');
    expect(of('expertTask', 'doneByCustomer')).toBe('inProgress');
  });

  it('keeps an incident whose remaining actions failed in progress, never resolved', () => {
    expect(of('failed')).toBe('inProgress');
    expect(of('succeeded', 'failed')).toBe('inProgress');
    expect(of('succeeded', 'rejected', 'doneByCustomer', 'skippedByCustomer', 'failed')).toBe('inProgress');
  });

  it('counts a failure as the experts’ work ahead of open customer tasks', () => {
    expect(of('failed', 'customerPending')).toBe('inProgress');
    expect(of('succeeded', 'customerPending', 'failed', 'doneByCustomer')).toBe('inProgress');
  });

  it('awaits the customer when only customer tasks are left', () => {
    expect(of('customerPending')).toBe('awaitingCustomerAction');
    expect(of('succeeded', 'customerPending', 'doneByCustomer', 'skippedByCustomer', 'rejected')).toBe(
      'awaitingCustomerAction',
    );
  });

  it('is resolved once everything is closed: succeeded, rejected, done or skipped by the customer', () => {
    expect(of('succeeded')).toBe('resolved');
    expect(of('rejected')).toBe('resolved');
    expect(of('doneByCustomer')).toBe('resolved');
    expect(of('skippedByCustomer')).toBe('resolved');
    expect(of('succeeded', 'rejected', 'doneByCustomer', 'skippedByCustomer')).toBe('resolved');
  });

  it('derives the managed status', () => {
    expect(managedStatus([])).toBe('active');
    expect(managedStatus([{ state: 'proposed' }, { state: 'proposed' }])).toBe('active');
    expect(managedStatus([{ state: 'succeeded' }, { state: 'proposed' }])).toBe('inProgress');
    expect(managedStatus([{ state: 'succeeded' }, { state: 'customerPending' }])).toBe(
      'awaitingCustomerAction',
    );
    expect(managedStatus([{ state: 'succeeded' }, { state: 'doneByCustomer' }, { state: 'rejected' }])).toBe(
      'resolved',
    );
  });
});

describe('the lifecycle table', () => {
  // docs/architecture.md, "The action lifecycle": what one action alone, once handled, makes of the
  // incident's status.
  const DOCUMENTED_STATUS: Record<ActionState, ReturnType<typeof managedStatus>> = {
    proposed: 'active',
    approved: 'inProgress',
    executing: 'inProgress',
    expertTask: 'inProgress',
    failed: 'inProgress',
    customerPending: 'awaitingCustomerAction',
    succeeded: 'resolved',
    rejected: 'resolved',
    doneByCustomer: 'resolved',
    skippedByCustomer: 'resolved',
  };

  it.each(ACTION_STATES)('gives %s the documented managed status', (state) => {
    expect(of(state)).toBe(DOCUMENTED_STATUS[state]);
    // Beside a handled, closed action the proposed one counts as the experts' open work too.
    expect(of('succeeded', state)).toBe(state === 'proposed' ? 'inProgress' : DOCUMENTED_STATUS[state]);
  });

  it('allows exactly the documented transitions, and none out of a closed state', () => {
    const moves = ACTION_STATES.flatMap((from) =>
      ACTION_STATES.filter((to) => canTransition(from, to)).map((to) => `${from}>${to}`),
    );
    expect(moves.sort()).toEqual(
      [
        'proposed>approved',
        'proposed>rejected',
        'proposed>customerPending',
        'approved>executing',
        'approved>expertTask',
        'approved>customerPending',
        'approved>failed',
        'executing>succeeded',
        'executing>failed',
        'executing>customerPending',
        'expertTask>succeeded',
        'failed>approved',
        'failed>customerPending',
        'customerPending>doneByCustomer',
        'customerPending>skippedByCustomer',
        'customerPending>approved',
      ].sort(),
    );
    for (const state of ACTION_STATES) {
      expect(LIFECYCLE[state].next.length === 0).toBe(LIFECYCLE[state].openFor === null);
    }
  });

  it('keeps a task index entry exactly while the action can still become a task of that status', () => {
    expect(statesBecoming('pending').sort()).toEqual(
      ['proposed', 'approved', 'executing', 'failed', 'customerPending'].sort(),
    );
    expect(statesBecoming('done').sort()).toEqual(
      [
        'proposed',
        'approved',
        'executing',
        'failed',
        'customerPending',
        'doneByCustomer',
        'skippedByCustomer',
      ].sort(),
    );
  });

  it('files the actions on the card by their stage, customer tasks and closed ones apart', () => {
    const groups = Object.fromEntries(ACTION_STATES.map((state) => [state, LIFECYCLE[state].stage]));
    expect(groups).toEqual({
      proposed: 'awaitingExpert',
      approved: 'awaitingExpert',
      executing: 'awaitingExpert',
      expertTask: 'expertTasks',
      failed: 'failed',
      customerPending: 'customerTasks',
      succeeded: 'completed',
      rejected: 'rejected',
      doneByCustomer: 'customerDone',
      skippedByCustomer: 'customerDone',
    });
  });
});
