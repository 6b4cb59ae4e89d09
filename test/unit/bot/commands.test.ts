import { describe, expect, it } from 'vitest';
import { parseCommand, replyText, runCommand } from '../../../bot/commands.js';
import { approveAction } from '../../../core/approve-action.js';
import { executeAction } from '../../../core/execute-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { ADMIN, CUSTOMER, coreHarness, EXPERT } from '../../support/core-harness.js';
import { sampleIngestBody, shippedSample } from '../../support/incident-factory.js';

const FIN_SERVERS = { devices: [{ group: 'Finance-Servers' }], users: [] };

describe('chat commands', () => {
  it('parses the fixed words and refuses anything else with usage', () => {
    expect(parseCommand('')).toEqual({ name: 'help' });
    expect(parseCommand('  PENDING ')).toEqual({ name: 'pending' });
    expect(parseCommand('done 48213:act-5')).toEqual({ name: 'done', taskId: '48213:act-5' });
    expect(parseCommand('exclude device-group Domain Controllers')).toEqual({
      name: 'exclude',
      kind: 'device-group',
      value: 'Domain Controllers',
    });
    expect(parseCommand('unexclude user ceo@contoso.com')).toEqual({
      name: 'unexclude',
      kind: 'user',
      value: 'ceo@contoso.com',
    });
    expect(parseCommand('exclude laptop x')).toEqual({
      error: expect.stringContaining('Usage: exclude device|user|device-group|user-group|device-tag'),
    });
    expect(parseCommand('done')).toEqual({ error: expect.stringContaining('Usage: done <taskId>') });
    expect(parseCommand('isolate everything')).toEqual({ error: 'Unknown command "isolate".' });
    expect(parseCommand('Retry 48213:act-1')).toEqual({ name: 'retry', taskId: '48213:act-1' });
    expect(parseCommand('handover 48213:act-1')).toEqual({ name: 'handover', taskId: '48213:act-1' });
    expect(parseCommand('retry')).toEqual({ error: expect.stringContaining('Usage: retry <taskId>') });
    expect(parseCommand('handover a b')).toEqual({
      error: expect.stringContaining('Usage: handover <taskId>'),
    });
  });

  it('lets an expert retry or hand over a failed action, and refuses everyone else', async () => {
    const failing = {
      dryRun: false,
      submit: async () => ({ kind: 'finished' as const, outcome: { ok: false as const, reason: 'offline' } }),
      check: async () => [],
    };
    const h = coreHarness({ executor: failing });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
    for (const actionId of ['act-1', 'act-3']) {
      await approveAction(h.deps, { incidentId: '48213', actionId }, EXPERT);
      await executeAction(h.deps, { incidentId: '48213', actionId });
    }

    const refused = await runCommand(h.deps, 'retry 48213:act-1', CUSTOMER, 'socChannel');
    expect(refused).toMatchObject({
      kind: 'retry',
      shared: false,
      decision: { ok: false, code: 'not_expert' },
    });
    expect(replyText(refused)).toBe(
      'Not retried: only the MDR experts named in the policy may retry actions',
    );
    expect(await runCommand(h.deps, 'handover 48213:act-3', ADMIN, 'direct')).toMatchObject({
      decision: { ok: false, code: 'not_expert' },
    });
    expect(await runCommand(h.deps, 'retry 48213:act-1', EXPERT, 'elsewhere')).toMatchObject({
      kind: 'refused',
      refusal: { code: 'wrong_place' },
    });

    const retried = await runCommand(h.deps, 'retry 48213:act-1', EXPERT, 'direct');
    expect(retried).toMatchObject({
      kind: 'retry',
      shared: true,
      decision: { ok: true, action: { state: 'approved' } },
    });
    expect(replyText(retried)).toBe('Retrying 48213:act-1: approved again, it runs now.');
    const handed = await runCommand(h.deps, 'handover 48213:act-3', EXPERT, 'socChannel');
    expect(handed).toMatchObject({ kind: 'handover', shared: true, decision: { ok: true } });
    expect(replyText(handed)).toContain('Handed 48213:act-3 to the customer');
    const pending = await runCommand(h.deps, 'pending', CUSTOMER, 'socChannel');
    expect(replyText(pending)).toBe(
      [
        '• 48213:act-3: Soft-delete email to bea.ortiz@contoso.com (handed over)',
        '   Network message id 0c8e4a2f-6b1d-4f3e-9a70-08dd62d1c4b5',
        '   Recipient bea.ortiz@contoso.com',
      ].join('\n'),
    );
    expect(pending).toMatchObject({ tasks: [{ guidance: expect.stringContaining('offline') }] });
    expect(replyText(await runCommand(h.deps, 'retry 48213:act-1', EXPERT, 'direct'))).toBe(
      'Not retried: only a failed action can be retried: this action is already approved by slack:U0EXPERT1',
    );
    expect(replyText(await runCommand(h.deps, 'retry nonsense', EXPERT, 'direct'))).toContain(
      'is not a task id',
    );
  });

  it('lists pending tasks and marks one done as a customer', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
    const pending = await runCommand(h.deps, 'pending', CUSTOMER, 'socChannel');
    expect(pending).toMatchObject({ kind: 'tasks', shared: false, tasks: [{ id: '48213:act-5' }] });
    const done = await runCommand(h.deps, 'done 48213:act-5', CUSTOMER, 'socChannel');
    expect(done).toMatchObject({ kind: 'done', shared: true, decision: { ok: true } });
    expect(replyText(done)).toBe('Task 48213:act-5 marked done.');
    expect(replyText(await runCommand(h.deps, 'pending', CUSTOMER, 'socChannel'))).toBe(
      'No pending customer tasks.',
    );
    expect(replyText(await runCommand(h.deps, 'done nonsense', CUSTOMER, 'socChannel'))).toContain(
      'is not a task id',
    );
  });

  it('lets admins change exclusions and refuses everyone else', async () => {
    const h = coreHarness();
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
    const refused = await runCommand(
      h.deps,
      'exclude device fin-wks-0142.corp.contoso.com',
      EXPERT,
      'socChannel',
    );
    expect(replyText(refused)).toBe('Refused: only the admins named in the policy may change exclusions');
    const added = await runCommand(
      h.deps,
      'exclude device fin-wks-0142.corp.contoso.com',
      ADMIN,
      'socChannel',
    );
    expect(added).toMatchObject({ kind: 'exclusionChange', shared: true });
    expect(replyText(added)).toBe(
      'Excluded: device name fin-wks-0142.corp.contoso.com. 2 proposed action(s) on it are now customer tasks.',
    );
    expect(replyText(await runCommand(h.deps, 'exclusions', EXPERT, 'socChannel'))).toBe(
      'Exclusions in force:\n• device fin-wks-0142.corp.contoso.com (added by slack:U0ADMIN1 at 2026-11-27T10:00:00.000Z)',
    );
    expect(
      replyText(
        await runCommand(h.deps, 'unexclude device fin-wks-0142.corp.contoso.com', ADMIN, 'socChannel'),
      ),
    ).toBe('No longer excluded: device name fin-wks-0142.corp.contoso.com.');
    expect(
      replyText(
        await runCommand(h.deps, 'unexclude device fin-wks-0142.corp.contoso.com', ADMIN, 'socChannel'),
      ),
    ).toContain('Nothing changed');
  });

  it('answers commands only in the SOC channel and direct messages, and audits every refusal', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
    for (const words of [
      'help',
      'pending',
      'exclusions',
      'done 48213:act-5',
      'exclude device-tag VIP',
      'retry 48213:act-1',
      'handover 48213:act-1',
    ]) {
      const reply = await runCommand(h.deps, words, ADMIN, 'elsewhere');
      expect(reply).toMatchObject({ kind: 'refused', refusal: { code: 'wrong_place' } });
    }
    expect(await h.store.getAction('48213', 'act-5')).toMatchObject({ state: 'customerPending' });
    const audit = await h.store.listAudit();
    expect(audit.filter((e) => e.outcome === 'refused' && e.detail.startsWith('wrong_place'))).toHaveLength(
      7,
    );
  });

  it('shows the exclusion list to experts and admins only', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    for (const place of ['socChannel', 'direct'] as const) {
      expect(await runCommand(h.deps, 'exclusions', CUSTOMER, place)).toMatchObject({
        kind: 'refused',
        refusal: { code: 'not_allowed' },
      });
      expect(await runCommand(h.deps, 'exclusions', EXPERT, place)).toMatchObject({ kind: 'exclusions' });
      expect(await runCommand(h.deps, 'exclusions', ADMIN, place)).toMatchObject({ kind: 'exclusions' });
    }
    const audit = await h.store.listAudit();
    expect(audit.filter((e) => e.actor === CUSTOMER.id && e.event === 'command:exclusions')).toHaveLength(2);
  });

  it('keeps customer tasks to the SOC channel: a customer in a direct message is sent there', async () => {
    const h = coreHarness({ policy: { exclusions: FIN_SERVERS } });
    await ingestIncident(h.deps, sampleIngestBody(shippedSample()), { id: 'api:ingest', platform: 'api' });
    expect(await runCommand(h.deps, 'done 48213:act-5', CUSTOMER, 'direct')).toMatchObject({
      kind: 'refused',
      refusal: { code: 'wrong_place' },
    });
    expect(await runCommand(h.deps, 'pending', CUSTOMER, 'direct')).toMatchObject({ kind: 'refused' });
    expect(await runCommand(h.deps, 'pending', ADMIN, 'direct')).toMatchObject({ kind: 'tasks' });
    expect(await h.store.getAction('48213', 'act-5')).toMatchObject({ state: 'customerPending' });
  });
});
