import { describe, expect, it } from 'vitest';
import {
  isGraphIncidentId,
  MDR_TAGS,
  planWriteback,
  writebackTarget,
} from '../../../core/incident-writeback.js';
import { policySchema } from '../../../core/policy.js';

describe('writebackTarget', () => {
  it('tags by managed status and assigns the queue only while customer tasks are open', () => {
    expect(writebackTarget([{ state: 'proposed' }], 'Contoso SOC')).toEqual({ tag: MDR_TAGS.inProgress });
    expect(writebackTarget([{ state: 'failed' }, { state: 'customerPending' }], 'Contoso SOC')).toEqual({
      tag: MDR_TAGS.inProgress,
      assignedTo: 'Contoso SOC',
    });
    expect(writebackTarget([{ state: 'succeeded' }, { state: 'customerPending' }], 'Contoso SOC')).toEqual({
      tag: MDR_TAGS.awaitingCustomerAction,
      assignedTo: 'Contoso SOC',
    });
    expect(writebackTarget([{ state: 'succeeded' }, { state: 'doneByCustomer' }], 'Contoso SOC')).toEqual({
      tag: MDR_TAGS.resolved,
    });
    expect(writebackTarget([{ state: 'customerPending' }], undefined)).toEqual({
      tag: MDR_TAGS.awaitingCustomerAction,
    });
  });
});

describe('planWriteback', () => {
  it('replaces every MDR: tag with the target one and keeps the others in order', () => {
    const patch = planWriteback(
      { customTags: ['Finance', 'mdr: in progress', 'VIP', 'MDR: Resolved'], assignedTo: 'someone' },
      { tag: MDR_TAGS.awaitingCustomerAction },
    );
    expect(patch).toEqual({ customTags: ['Finance', 'VIP', MDR_TAGS.awaitingCustomerAction] });
  });

  it('changes only the owner when the tag is in step', () => {
    expect(
      planWriteback(
        { customTags: [MDR_TAGS.awaitingCustomerAction], assignedTo: null },
        { tag: MDR_TAGS.awaitingCustomerAction, assignedTo: 'Contoso SOC' },
      ),
    ).toEqual({ assignedTo: 'Contoso SOC' });
  });

  it('is null when Graph already shows the target', () => {
    expect(
      planWriteback(
        { customTags: ['Finance', MDR_TAGS.resolved], assignedTo: 'Contoso SOC' },
        { tag: MDR_TAGS.resolved },
      ),
    ).toBeNull();
  });
});

describe('isGraphIncidentId', () => {
  it('takes Defender incident numbers only', () => {
    expect(isGraphIncidentId('48213')).toBe(true);
    expect(isGraphIncidentId('INC-1')).toBe(false);
    expect(isGraphIncidentId('')).toBe(false);
  });
});

describe('policy notifications.assignTo', () => {
  it('is optional free text, trimmed, never empty', () => {
    const base = { notifications: { email: [] } };
    expect(policySchema.parse(base).notifications?.assignTo).toBeUndefined();
    expect(policySchema.parse({ notifications: { assignTo: ' Contoso SOC ' } }).notifications?.assignTo).toBe(
      'Contoso SOC',
    );
    expect(policySchema.safeParse({ notifications: { assignTo: '  ' } }).success).toBe(false);
  });
});
