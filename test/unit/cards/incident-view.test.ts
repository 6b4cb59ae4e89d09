import { describe, expect, it } from 'vitest';
import { describeAction } from '../../../cards/assets.js';
import { buildIncidentView } from '../../../cards/incident-view.js';
import { displayIdentity, formatWhen } from '../../../cards/text.js';
import {
  customerTasksOnlyIncident,
  everyStateIncident,
  failedWithClosedTasksIncident,
  incidentState,
  RECEIVED_AT,
  resolvedIncident,
  SAMPLE,
  SAMPLE_NOW,
} from '../../support/incident-factory.js';

const options = { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com/' };

function line(view: ReturnType<typeof buildIncidentView>, actionId: string) {
  for (const g of view.groups) {
    const found = g.items.find((i) => i.actionId === actionId);
    if (found) return { group: g.key, ...found };
  }
  throw new Error(`no line for ${actionId}`);
}

describe('buildIncidentView', () => {
  it('shows severity, title, portal link, managed status and the API link', () => {
    const view = buildIncidentView(incidentState(), options);
    expect(view.severity).toMatchObject({ level: 'high', label: 'High', tone: 'attention' });
    expect(view.title).toMatch(/^Multi-stage incident/);
    expect(view.portalUrl).toBe(
      'https://security.microsoft.com/incidents/48213?tid=7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
    );
    expect(view.status.label).toBe('In progress');
    expect(view.apiUrl).toBe('https://mdr-bot.contoso.com/api/incidents/48213');
    expect(view.receivedAt).toBe('09:05 UTC');
  });

  it('labels the four managed statuses as Defender Experts does', () => {
    const fresh = incidentState({ states: { 'act-2': { state: 'proposed', decidedBy: null } } });
    expect(buildIncidentView(fresh, options).status.label).toBe('Active');
    expect(buildIncidentView(everyStateIncident(), options).status.label).toBe('In progress');
    const customer = incidentState({
      states: {
        'act-1': { state: 'succeeded' },
        'act-3': { state: 'customerPending', excludedBy: 'user group Executives' },
        'act-4': { state: 'rejected' },
      },
    });
    expect(buildIncidentView(customer, options).status.label).toBe('Awaiting customer action');
    expect(buildIncidentView(resolvedIncident(), options).status.label).toBe('Resolved');
  });

  it('lists affected devices, users, emails and files', () => {
    const view = buildIncidentView(incidentState(), options);
    expect(view.assets.map((g) => [g.key, g.total])).toEqual([
      ['devices', 2],
      ['users', 2],
      ['messages', 1],
      ['files', 1],
    ]);
    expect(view.assets[0]?.items).toContain('fin-wks-0142.corp.contoso.com (Finance-Workstations)');
    expect(view.assets[1]?.items).toContain('Alex Vance (alex.vance@contoso.com)');
  });

  it('says what each action does to which asset, in words', () => {
    const view = buildIncidentView(incidentState(), options);
    expect(line(view, 'act-1').text).toBe(`Isolate device ${SAMPLE.workstation}`);
    expect(line(view, 'act-2').text).toBe(`Revoke sign-in sessions of ${SAMPLE.alex}`);
    expect(line(view, 'act-3').text).toBe(`Soft-delete email to ${SAMPLE.bea}`);
    expect(line(view, 'act-4').text).toBe(`Stop and quarantine Invoice_0314.exe on ${SAMPLE.workstation}`);
  });

  it('puts each state in its group with who and when', () => {
    const view = buildIncidentView(everyStateIncident(), options);
    expect(view.groups.map((g) => [g.key, g.items.map((i) => i.actionId)])).toEqual([
      ['failed', ['act-7']],
      ['completed', ['act-1', 'act-2']],
      ['awaitingExpert', ['act-4', 'act-9', 'act-10']],
      ['expertTasks', ['act-5']],
      ['customerTasks', ['act-3']],
      ['customerDone', ['act-8']],
      ['rejected', ['act-6']],
    ]);
    expect(line(view, 'act-1').status).toBe('Isolated by @U0EXPERT1 at 10:42 UTC');
    expect(line(view, 'act-4').status).toBe('In progress: Defender: InProgress (dry run)');
    expect(line(view, 'act-9').status).toBe('Approved by @U0EXPERT1 at 11:01 UTC, starting');
    expect(line(view, 'act-6').status).toBe('Rejected by @U0EXPERT2 at 10:20 UTC');
    expect(line(view, 'act-7').status).toBe('Failed at 10:30 UTC');
    expect(line(view, 'act-8').status).toBe('Done by servicenow at 13 Mar 16:05 UTC');
  });

  it('puts failures first, each with its reason, and keeps the incident in progress', () => {
    const view = buildIncidentView(failedWithClosedTasksIncident(), options);
    expect(view.status.label).toBe('In progress');
    expect(view.groups[0]).toMatchObject({ key: 'failed', title: 'Failed', total: 1 });
    const failed = line(view, 'act-1');
    expect(failed).toMatchObject({ status: 'Failed at 10:58 UTC', tone: 'attention', icon: '❌' });
    expect(failed.details[0]).toBe('Reason: Defender: Failed (the device has not reported in for 7 days)');
    expect(line(buildIncidentView(everyStateIncident(), options), 'act-7').details).toEqual([
      'Reason: Defender: TimeOut after 15 minutes',
    ]);
  });

  it('says so when a failure has no recorded reason', () => {
    const state = incidentState({ states: { 'act-2': { state: 'failed' } } });
    expect(line(buildIncidentView(state, options), 'act-2').details).toEqual(['Reason: not recorded']);
  });

  it('keeps failures on a card cut to its last lines', () => {
    const state = everyStateIncident();
    const many = Array.from({ length: 40 }, (_, i) => ({
      ...state.actions[0]!,
      id: `bulk-${i}`,
      state: 'proposed' as const,
    }));
    const view = buildIncidentView({ ...state, actions: [...many, ...state.actions] }, options);
    expect(view.groups[0]?.items.map((i) => i.actionId)).toEqual(['act-7']);
  });

  it('moves done and skipped customer tasks to "Done by your team", the skip with its reason', () => {
    const view = buildIncidentView(failedWithClosedTasksIncident(), options);
    expect(view.groups.map((g) => [g.key, g.title, g.total])).toEqual([
      ['failed', 'Failed', 1],
      ['completed', 'Completed by experts', 1],
      ['customerDone', 'Done by your team', 2],
    ]);
    expect(line(view, 'act-3')).toMatchObject({
      status: 'Done by @3b1d9f0e-customer-admin at 11:10 UTC',
      taskId: '48213:act-3',
      buttons: [],
    });
    const skipped = line(view, 'act-4');
    expect(skipped).toMatchObject({ status: 'Skipped by @U0CUSTOMER1 at 11:20 UTC', taskId: '48213:act-4' });
    expect(skipped.details).toEqual([
      'SHA-1 2d6e8c1b9f4a7e3d5c0b8a6f1e9d2c7b4a3f5e8d',
      'Reason: the workstation was reimaged by our IT team',
      'Excluded by device group Finance-Workstations',
    ]);
    expect(skipped.buttons).toEqual([]);
  });

  it('shows a skipped task without a reason when none was recorded', () => {
    const state = incidentState({ states: { 'act-3': { state: 'skippedByCustomer' } } });
    const skipped = line(buildIncidentView(state, options), 'act-3');
    expect(skipped).toMatchObject({ group: 'customerDone', status: 'Skipped' });
    expect(skipped.details.some((d) => d.startsWith('Reason:'))).toBe(false);
  });

  it('counts open work only: pending customer tasks, not done or skipped ones', () => {
    expect(buildIncidentView(failedWithClosedTasksIncident(), options).counts).toEqual({
      open: 1,
      failed: 1,
      needExpert: 0,
      needCustomer: 0,
    });
    const view = buildIncidentView(everyStateIncident(), options);
    expect(view.counts).toEqual({ open: 6, failed: 1, needExpert: 4, needCustomer: 1 });
    expect(view.groups.find((g) => g.key === 'customerTasks')).toMatchObject({
      title: 'Pending customer actions',
      total: 1,
    });
    expect(buildIncidentView(resolvedIncident(), options).counts).toEqual({
      open: 0,
      failed: 0,
      needExpert: 0,
      needCustomer: 0,
    });
  });

  it('counts a running action as the experts’ open work, as the managed status does', () => {
    const state = incidentState({ states: { 'act-1': { state: 'executing' } } });
    const running = { ...state, actions: state.actions.filter((a) => a.id === 'act-1') };
    expect(buildIncidentView(running, options)).toMatchObject({
      status: { value: 'inProgress' },
      counts: { open: 1, needExpert: 1, failed: 0, needCustomer: 0 },
    });
  });

  it('offers Approve and Reject on proposed actions, with a confirmation on destructive ones', () => {
    const view = buildIncidentView(incidentState(), options);
    const isolate = line(view, 'act-1');
    expect(isolate.buttons.map((b) => [b.verb, b.audience])).toEqual([
      ['approve', 'expert'],
      ['reject', 'expert'],
    ]);
    expect(isolate.buttons[0]?.confirm?.text).toContain(SAMPLE.workstation);
    expect(line(view, 'act-4').buttons[0]?.confirm).toBeUndefined();
  });

  it('shows why a proposed action cannot be approved', () => {
    const view = buildIncidentView(everyStateIncident(), options);
    expect(line(view, 'act-10').details).toContain(
      'Cannot approve: group membership of bea.ortiz@contoso.com could not be read (Graph 503)',
    );
  });

  it('gives a customer task its exclusion rule, guidance, task id and Mark done, Run it myself and Skip buttons', () => {
    const view = buildIncidentView(everyStateIncident(), options);
    const task = line(view, 'act-3');
    expect(task.details).toContain('Excluded by user group Executives: the experts may not act on it.');
    expect(task.steps[0]).toMatch(/^How: In the Microsoft Defender portal open Email & collaboration/);
    expect(task.taskId).toBe('48213:act-3');
    expect(task.buttons.map((b) => [b.verb, b.audience, b.ask])).toEqual([
      ['markDone', 'customer', undefined],
      ['runMyself', 'admin', 'confirm'],
      ['skip', 'customer', 'reason'],
    ]);
    expect(task.buttons[1]?.confirm?.confirm).toBe('Run it');
  });

  it('guides the expert through releasing a file from quarantine by hand', () => {
    const task = line(buildIncidentView(everyStateIncident(), options), 'act-5');
    expect(task.group).toBe('expertTasks');
    expect(task.text).toBe(`Release Invoice_0314.exe from quarantine on ${SAMPLE.server}`);
    expect(task.steps).toEqual([
      `File: Invoice_0314.exe · SHA-1 ${SAMPLE.sha1}`,
      'Open the Microsoft Defender portal: Action center > History.',
      `Find the quarantine action for Invoice_0314.exe on ${SAMPLE.server} and choose Undo.`,
      'If a custom indicator blocked it, on the device as administrator run "MpCmdRun.exe -Restore -Name EUS:Win32/CustomEnterpriseBlock -All".',
      'Warning: that command restores every file a custom indicator blocked on the device in the last 30 days, not only this one.',
      'Then click Mark done here.',
    ]);
    expect(task.linkUrl).toBe(
      'https://security.microsoft.com/action-center/history?tid=7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
    );
    expect(task.buttons.map((b) => [b.verb, b.audience])).toEqual([['markDone', 'expert']]);
  });

  it('names the file to release from the incident evidence when the action carries only its SHA-1', () => {
    const state = everyStateIncident();
    const evidence = {
      ...state.incident,
      files: [{ sha1: SAMPLE.sha1.toUpperCase(), name: 'payroll.xlsm' }],
    };
    const actions = state.actions.map((a) =>
      a.id === 'act-5' ? { ...a, target: { deviceId: SAMPLE.serverId, sha1: SAMPLE.sha1 } } : a,
    );
    const task = line(buildIncidentView({ ...state, incident: evidence, actions }, options), 'act-5');
    expect(task.steps[0]).toBe(`File: payroll.xlsm · SHA-1 ${SAMPLE.sha1}`);
    expect(task.steps).toContain(
      'If a custom indicator blocked it, on the device as administrator run "MpCmdRun.exe -Restore -Name EUS:Win32/CustomEnterpriseBlock -All".',
    );
  });

  it('cuts long lists with "and N more", actionable groups first', () => {
    const state = everyStateIncident();
    const many = Array.from({ length: 60 }, (_, i) => ({
      ...state.actions[0]!,
      id: `bulk-${i}`,
      state: 'proposed' as const,
    }));
    const view = buildIncidentView({ ...state, actions: [...state.actions, ...many] }, options);
    const awaiting = view.groups.find((g) => g.key === 'awaitingExpert');
    expect(awaiting).toMatchObject({ total: 63, more: 53 });
    expect(awaiting?.items).toHaveLength(10);
    expect(view.groups.reduce((n, g) => n + g.items.length, 0)).toBeLessThanOrEqual(20);
    expect(view.moreUrl).toBe('https://mdr-bot.contoso.com/api/incidents/48213');
  });

  it('links "and N more" to the portal when no API base URL is known', () => {
    const view = buildIncidentView(customerTasksOnlyIncident(), { now: SAMPLE_NOW });
    expect(view.apiUrl).toBeUndefined();
    expect(view.moreUrl).toBe(view.portalUrl);
  });

  it('links the incident in the Defender portal instead of a portal link that is not the portal', () => {
    const state = incidentState();
    for (const bad of [
      'javascript:alert(1)',
      'https://security.microsoft.com.evil.example/x',
      'http://security.microsoft.com/incidents/1',
    ]) {
      state.incident.portalUrl = bad;
      expect(buildIncidentView(state, options).portalUrl).toBe(
        `https://security.microsoft.com/incidents/${state.incident.id}`,
      );
    }
  });
});

describe('helpers', () => {
  it('shows an identity by its id or name part', () => {
    expect(displayIdentity('slack:U0EXPERT1')).toBe('@U0EXPERT1');
    expect(displayIdentity('teams:6f2c0a4e')).toBe('@6f2c0a4e');
    expect(displayIdentity('api:servicenow')).toBe('servicenow');
    expect(displayIdentity('mdr-experts')).toBe('mdr-experts');
  });

  it('writes times in UTC, with the date when not today', () => {
    expect(formatWhen(RECEIVED_AT, SAMPLE_NOW)).toBe('09:05 UTC');
    expect(formatWhen('2025-03-13T16:05:00Z', SAMPLE_NOW)).toBe('13 Mar 16:05 UTC');
    expect(formatWhen('2024-12-31T23:59:00Z', SAMPLE_NOW)).toBe('31 Dec 2024 23:59 UTC');
  });

  it('describes an action without the incident from its target alone', () => {
    expect(describeAction('disableUser', { userId: 'abc' }).text).toBe('Disable user abc');
    expect(
      describeAction('runAntivirusScan', { deviceId: 'd1', deviceName: 'ws-042.contoso.com' }).text,
    ).toBe('Run antivirus scan on ws-042.contoso.com');
  });
});
