import { describe, expect, it } from 'vitest';
import type { ActionState } from '../../../core/actions.js';
import { managedStatus } from '../../../core/managed-status.js';

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
