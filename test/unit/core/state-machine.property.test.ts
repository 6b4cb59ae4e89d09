import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StaticAssetDirectory } from '../../../adapters/static-directory.js';
import type { ActionState } from '../../../core/actions.js';
import { approveAction } from '../../../core/approve-action.js';
import { changeExclusions, EXCLUSION_KINDS } from '../../../core/change-exclusions.js';
import type { ActionRef, Actor, Decision } from '../../../core/decisions.js';
import { executeAction } from '../../../core/execute-action.js';
import { ingestIncident } from '../../../core/ingest-incident.js';
import { markTaskDone } from '../../../core/mark-task-done.js';
import type { ActionRecord } from '../../../core/model.js';
import { rejectAction } from '../../../core/reject-action.js';
import { ADMIN, CUSTOMER, coreHarness, EXPERT } from '../../support/core-harness.js';

const DEVICES = [
  { mdeDeviceId: 'a'.repeat(40), deviceDnsName: 'ws-1.contoso.com', rbacGroupName: 'Workstations', tags: [] },
  {
    mdeDeviceId: 'b'.repeat(40),
    deviceDnsName: 'dc01.contoso.com',
    rbacGroupName: 'Domain Controllers',
    tags: ['VIP'],
  },
  {
    mdeDeviceId: 'c'.repeat(40),
    deviceDnsName: 'ws-2.contoso.com',
    rbacGroupName: 'Workstations',
    tags: ['VIP'],
  },
];
const USERS = ['ceo@contoso.com', 'j.doe@contoso.com', 'a.b@contoso.com'];
/** The directory's view of them (they are not in the evidence). */
const DIRECTORY_USERS = USERS.map((upn, i) => ({
  id: `00000000-0000-4000-8000-00000000000${i}`,
  userPrincipalName: upn,
  proxyAddresses: [`SMTP:${upn}`],
}));
const GROUPS: Record<string, string[]> = {
  'ceo@contoso.com': ['Executives'],
  'j.doe@contoso.com': ['Finance'],
};
const ACTORS: Actor[] = [
  EXPERT,
  { id: 'teams:expert-aad', platform: 'teams' },
  ADMIN,
  CUSTOMER,
  { id: 'teams:someone', platform: 'teams' },
];
const EXCLUSION_VALUES: Record<(typeof EXCLUSION_KINDS)[number], string[]> = {
  device: ['ws-1.contoso.com', 'DC01.contoso.com', 'b'.repeat(40)],
  user: ['CEO@contoso.com', 'a.b@contoso.com'],
  'device-group': ['Domain Controllers', 'workstations'],
  'user-group': ['Executives', 'finance'],
  'device-tag': ['vip'],
};

const actionArb = fc.record({
  type: fc.constantFrom(
    'isolateDevice',
    'runAntivirusScan',
    'releaseFileFromQuarantine',
    'revokeUserTokens',
    'disableUser',
    'softDeleteEmails',
  ),
  device: fc.integer({ min: 0, max: 2 }),
  user: fc.integer({ min: 0, max: 2 }),
  completed: fc.boolean(),
});

/** Six actions per incident, so approvals and clicks mostly name real ones; re-ingest adds none. */
const incidentActionsArb = fc
  .array(actionArb, { minLength: 6, maxLength: 6 })
  .map((list) => list.map((a, i) => ({ ...a, n: i + 1 })));

const commandArb = fc.oneof(
  fc.record({
    kind: fc.constant('ingest' as const),
    incident: fc.integer({ min: 1, max: 2 }),
    actions: incidentActionsArb,
  }),
  fc.record({
    kind: fc.constantFrom('approve' as const, 'reject' as const, 'done' as const),
    incident: fc.integer({ min: 1, max: 2 }),
    n: fc.integer({ min: 1, max: 6 }),
    actor: fc.integer({ min: 0, max: ACTORS.length - 1 }),
  }),
  fc.record({
    kind: fc.constant('exclusion' as const),
    op: fc.constantFrom('add' as const, 'remove' as const),
    exclusion: fc
      .constantFrom(...EXCLUSION_KINDS)
      .chain((k) => fc.record({ k: fc.constant(k), value: fc.constantFrom(...EXCLUSION_VALUES[k]) })),
    // Mostly the admin, so exclusions really change between ingest and approval.
    actor: fc.constantFrom(2, 2, 2, 0, 3),
  }),
  fc.record({ kind: fc.constant('runJobs' as const), twice: fc.boolean() }),
);

function ingestBody(
  incident: number,
  actions: { n: number; type: string; device: number; user: number; completed: boolean }[],
) {
  const target = (a: (typeof actions)[number]) => {
    const d = DEVICES[a.device]!;
    const u = USERS[a.user]!;
    if (['isolateDevice', 'runAntivirusScan'].includes(a.type)) return { deviceId: d.mdeDeviceId };
    if (a.type === 'releaseFileFromQuarantine') return { deviceId: d.mdeDeviceId, sha1: 'd'.repeat(40) };
    if (a.type === 'softDeleteEmails') return { networkMessageId: `m-${a.n}`, recipient: u };
    return { upn: u };
  };
  const unique = new Map(actions.map((a) => [a.n, a]));
  return {
    incident: {
      id: String(incident),
      displayName: `Incident ${incident}`,
      severity: 'high',
      alerts: [
        {
          evidence: DEVICES.map((d) => ({ '@odata.type': '#microsoft.graph.security.deviceEvidence', ...d })),
        },
      ],
    },
    managedResponse: {
      summary: 'random',
      actions: [...unique.values()].map((a) => ({
        id: `act-${a.n}`,
        type: a.type,
        status: a.completed ? 'completed' : 'proposed',
        target: target(a),
      })),
    },
  };
}

/**
 * The test's own model of the lifecycle, written from the product contract (not read from core): who
 * may follow whom. A customer admin's own run goes customerPending -> approved; a failure is retried
 * (approved) or handed over (customerPending); an approved or executing action whose asset became
 * excluded meanwhile turns into a customer task.
 */
const LIFECYCLE: Record<ActionState, readonly ActionState[]> = {
  proposed: ['approved', 'rejected', 'customerPending'],
  approved: ['executing', 'expertTask', 'customerPending', 'failed'],
  executing: ['succeeded', 'failed', 'customerPending'],
  expertTask: ['succeeded'],
  customerPending: ['doneByCustomer', 'skippedByCustomer', 'approved'],
  failed: ['approved', 'customerPending'],
  succeeded: [],
  rejected: [],
  doneByCustomer: [],
  skippedByCustomer: [],
};

/** The test's own model of the exclusions: the rules in force as `kind|value` (policy file first). */
const POLICY_RULES = ['device-group|Domain Controllers'];
const ADMIN_IDS = new Set<string>([ADMIN.id]);
const DEVICE_ACTIONS = new Set(['isolateDevice', 'runAntivirusScan', 'releaseFileFromQuarantine']);

/** Whether the model's rules exclude the asset of a generated action (names compare case-insensitively). */
function modelExcludes(
  rules: ReadonlySet<string>,
  action: { type: string; device: number; user: number },
): boolean {
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  for (const rule of rules) {
    const [kind, value = ''] = rule.split('|') as [string, string];
    if (DEVICE_ACTIONS.has(action.type)) {
      const d = DEVICES[action.device]!;
      if (kind === 'device' && (same(value, d.deviceDnsName) || same(value, d.mdeDeviceId))) return true;
      if (kind === 'device-group' && same(value, d.rbacGroupName)) return true;
      if (kind === 'device-tag' && d.tags.some((t) => same(t, value))) return true;
    } else {
      // The user's actions and the emails sent to them: the user is the asset.
      const upn = USERS[action.user]!;
      if (kind === 'user' && same(value, upn)) return true;
      if (kind === 'user-group' && (GROUPS[upn] ?? []).some((g) => same(g, value))) return true;
    }
  }
  return false;
}

/** States reachable from `from` in the model (a job may take several steps in one go). */
function reachable(from: ActionState, to: ActionState): boolean {
  const seen = new Set<ActionState>([from]);
  const queue: ActionState[] = [from];
  while (queue.length > 0) {
    for (const next of LIFECYCLE[queue.shift()!]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return from !== to && seen.has(to);
}

describe('the action state machine under random use', () => {
  it('never acts on an excluded asset, never executes twice, never lets a customer approve, audits every refusal', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(incidentActionsArb, fc.array(commandArb, { minLength: 1, maxLength: 40 })),
        async ([first, rest]) => {
          const commands = [{ kind: 'ingest' as const, incident: 1, actions: first }, ...rest];
          const directory = new StaticAssetDirectory(GROUPS, DIRECTORY_USERS);
          const h = coreHarness({
            directory,
            policy: { exclusions: { devices: [{ group: 'Domain Controllers' }], users: [] } },
          });
          const { deps, store, executor } = h;
          let refusals = 0;
          const arrivedDone = new Set<string>();
          const rules = new Set(POLICY_RULES);
          /** What each incident's actions were generated as, by `incident:act-n` (as first ingested). */
          const generated = new Map<string, { type: string; device: number; user: number }>();

          const stateOf = async () => {
            const all: ActionRecord[] = [];
            for (const id of ['1', '2']) all.push(...((await store.getIncident(id))?.actions ?? []));
            return new Map(all.map((a) => [`${a.incidentId}:${a.id}`, a]));
          };

          for (const command of commands) {
            const before = await stateOf();
            const excludedBefore = new Set(rules);
            let decision: Decision | undefined;
            let actor: Actor | undefined;
            switch (command.kind) {
              case 'ingest': {
                const result = await ingestIncident(deps, ingestBody(command.incident, command.actions), {
                  id: 'api:ingest',
                  platform: 'api',
                });
                for (const a of result.added) {
                  if (a.state === 'succeeded') arrivedDone.add(`${a.incidentId}:${a.id}`);
                  const spec = command.actions.filter((g) => `act-${g.n}` === a.id).at(-1);
                  if (spec) generated.set(`${a.incidentId}:${a.id}`, spec);
                }
                break;
              }
              case 'approve':
              case 'reject':
              case 'done': {
                actor = ACTORS[command.actor]!;
                const ref: ActionRef = { incidentId: String(command.incident), actionId: `act-${command.n}` };
                const run = { approve: approveAction, reject: rejectAction, done: markTaskDone }[
                  command.kind
                ];
                decision = await run(deps, ref, actor);
                if (!decision.ok) refusals++;
                if (
                  command.kind === 'approve' &&
                  !['slack:U0EXPERT1', 'teams:expert-aad'].includes(actor.id)
                ) {
                  expect(decision.ok).toBe(false);
                  expect(decision.ok === false && decision.code).toBe('not_expert');
                }
                break;
              }
              case 'exclusion': {
                actor = ACTORS[command.actor]!;
                const result = await changeExclusions(
                  deps,
                  { op: command.op, kind: command.exclusion.k, value: command.exclusion.value },
                  actor,
                );
                expect(result.ok, `${actor.id} changing exclusions`).toBe(ADMIN_IDS.has(actor.id));
                if (!result.ok) refusals++;
                const rule = `${command.exclusion.k}|${command.exclusion.value}`;
                if (result.ok && command.op === 'add') rules.add(rule);
                if (result.ok && command.op === 'remove') rules.delete(rule);
                break;
              }
              case 'runJobs': {
                const jobs = h.jobs.jobs.splice(0).filter((j) => j.kind === 'execute');
                // "twice": the same job delivered to two workers at once.
                for (const job of jobs) {
                  await Promise.all((command.twice ? [job, job] : [job]).map((j) => executeAction(deps, j)));
                }
                break;
              }
            }

            const after = await stateOf();
            for (const [key, action] of after) {
              const previous = before.get(key);
              if (previous)
                expect(previous.state === action.state || reachable(previous.state, action.state)).toBe(true);
              const entered = previous?.state !== action.state;
              if (
                entered &&
                ['approved', 'executing', 'succeeded', 'expertTask'].includes(action.state) &&
                !arrivedDone.has(key)
              ) {
                if (action.state === 'succeeded' && previous?.state === 'expertTask') continue;
                const spec = generated.get(key);
                expect(spec, `${key} was generated`).toBeDefined();
                expect(
                  modelExcludes(excludedBefore, spec!),
                  `${key} reached ${action.state} on an asset the model excludes`,
                ).toBe(false);
              }
            }
          }

          const runs = new Map<string, number>();
          for (const r of executor.records)
            runs.set(`${r.incidentId}:${r.actionId}`, (runs.get(`${r.incidentId}:${r.actionId}`) ?? 0) + 1);
          for (const [key, count] of runs) expect(count, `${key} executed ${count} times`).toBe(1);

          const audit = [
            ...(await store.listAudit('1')),
            ...(await store.listAudit('2')),
            ...(await store.listAudit()),
          ];
          expect(audit.filter((e) => e.outcome === 'refused').length).toBeGreaterThanOrEqual(refusals);
          const refusedDecisions = audit.filter((e) => e.outcome === 'refused' && e.event !== 'execute');
          expect(refusedDecisions.length).toBe(refusals);
        },
      ),
      { numRuns: 500 },
    );
  });
});
