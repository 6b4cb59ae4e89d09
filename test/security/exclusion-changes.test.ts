import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../adapters/memory-store.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { StaticAssetDirectory } from '../../adapters/static-directory.js';
import { replyText, runCommand } from '../../bot/commands.js';
import { approveAction } from '../../core/approve-action.js';
import { changeExclusions, currentExclusions } from '../../core/change-exclusions.js';
import { executeAction } from '../../core/execute-action.js';
import type { Exclusions, IncidentRecord } from '../../core/model.js';
import type {
  ActionStore,
  AssetDirectory,
  DeviceFacts,
  DirectoryUser,
  UserReference,
} from '../../core/ports.js';
import { ADMIN_TOKEN, send, startBot } from '../support/bot-server.js';
import { ADMIN, coreHarness, EXPERT } from '../support/core-harness.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { actionRecord, incidentRecord } from '../support/store-fixtures.js';

let redis: TestRedis;
let next = 0;
const opened: ActionStore[] = [];
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis?.cleanup();
});

/** Opens a store on a fresh corner of the backend, and `replica()` opens another connection to the same one. */
interface Backend {
  open(): { store: ActionStore; replica(): ActionStore };
}

const backends: [string, Backend][] = [
  [
    'memory',
    {
      open() {
        const store = new MemoryStore();
        return { store, replica: () => store };
      },
    },
  ],
  [
    'redis',
    {
      open() {
        const prefix = `${redis.prefix}${++next}:`;
        const connect = () => {
          const store = new RedisStore({ url: redis.url }, prefix);
          opened.push(store);
          return store;
        };
        return { store: connect(), replica: connect };
      },
    },
  ],
];

const FILE: Exclusions = { devices: [{ group: 'Finance-Servers' }], users: [] };
const add = (kind: 'device-tag' | 'device-group' | 'device', value: string) =>
  ({ op: 'add', kind, value }) as const;

describe.each(backends)('exclusion changes on the %s store', (_name, backend) => {
  // Issue 10 point 4, first bullet: two admins changing exclusions at once both get their rule kept.
  it('keeps both rules when two admins exclude at the same moment, 200 times over', async () => {
    const { store, replica } = backend.open();
    const first = coreHarness({ store, policy: { exclusions: FILE } });
    const second = coreHarness({ store: replica(), policy: { exclusions: FILE } });

    for (let i = 0; i < 200; i += 1) {
      const [a, b] = await Promise.all([
        changeExclusions(first.deps, add('device-tag', `A-${i}`), ADMIN),
        changeExclusions(second.deps, add('device-tag', `B-${i}`), ADMIN),
      ]);
      expect(a).toMatchObject({ ok: true, changed: true });
      expect(b).toMatchObject({ ok: true, changed: true });
    }

    const tags = (await currentExclusions(first.deps)).devices.flatMap((r) => ('tag' in r ? [r.tag] : []));
    expect(tags).toHaveLength(400);
    for (let i = 0; i < 200; i += 1) expect(tags).toEqual(expect.arrayContaining([`A-${i}`, `B-${i}`]));
    const audited = (await store.listAudit(undefined, 1_000)).filter((e) => e.event === 'exclude');
    expect(audited).toHaveLength(400);
    expect((await store.getExclusionChanges()).version).toBe(400);
  });

  // Issue 10 point 4, second bullet: run-time changes no longer shadow the policy file for ever.
  it('applies a rule added to the policy file after a run-time change at the next start', async () => {
    const { store, replica } = backend.open();
    const before = coreHarness({ store, policy: { exclusions: FILE } });
    await changeExclusions(before.deps, add('device-tag', 'VIP'), ADMIN);

    const nextFile: Exclusions = { devices: [...FILE.devices, { group: 'Domain Controllers' }], users: [] };
    const after = coreHarness({ store: replica(), policy: { exclusions: nextFile } });
    const dc = incidentRecord('1', {
      devices: [{ id: 'dev-dc', dnsName: 'dc01.contoso.com', group: 'Domain Controllers', tags: [] }],
    });
    await after.store.upsertIncident(dc, [actionRecord('1', 'a', { target: { deviceId: 'dev-dc' } })], []);

    expect(await currentExclusions(after.deps)).toEqual({
      devices: [
        { group: 'Finance-Servers', source: 'policy file' },
        { group: 'Domain Controllers', source: 'policy file' },
        { tag: 'VIP', source: 'added by slack:U0ADMIN1 at 2026-11-27T10:00:00.000Z' },
      ],
      users: [],
    });
    const decision = await approveAction(after.deps, { incidentId: '1', actionId: 'a' }, EXPERT);
    expect(decision).toMatchObject({
      ok: false,
      code: 'asset_excluded',
      action: { state: 'customerPending', excludedBy: 'device group Domain Controllers' },
    });
  });

  it('keeps the removal of a policy-file rule across a restart, and undoes it with exclude', async () => {
    const { store, replica } = backend.open();
    const first = coreHarness({ store, policy: { exclusions: FILE } });
    const removed = await changeExclusions(
      first.deps,
      { op: 'remove', kind: 'device-group', value: 'finance-servers' },
      ADMIN,
    );
    expect(removed).toMatchObject({ ok: true, changed: true, exclusions: { devices: [] } });

    const restarted = coreHarness({ store: replica(), policy: { exclusions: FILE } });
    expect(await currentExclusions(restarted.deps)).toEqual({ devices: [], users: [] });
    expect((await restarted.store.getExclusionChanges()).removed.devices).toEqual([
      { rule: { group: 'finance-servers' }, by: ADMIN.id, at: '2026-11-27T10:00:00.000Z' },
    ]);

    await changeExclusions(restarted.deps, add('device-group', 'Finance-Servers'), ADMIN);
    expect(await currentExclusions(restarted.deps)).toEqual({
      devices: [{ group: 'Finance-Servers', source: 'policy file' }],
      users: [],
    });
    expect(await restarted.store.getExclusionChanges()).toMatchObject({
      added: { devices: [], users: [] },
      removed: { devices: [], users: [] },
    });
  });

  it('lists each rule in force with its source in the exclusions command', async () => {
    const { store } = backend.open();
    const h = coreHarness({ store, policy: { exclusions: FILE } });
    await runCommand(h.deps, 'exclude user-group Executives', ADMIN, 'socChannel');

    expect(replyText(await runCommand(h.deps, 'exclusions', EXPERT, 'socChannel'))).toBe(
      [
        'Exclusions in force:',
        '• device-group Finance-Servers (policy file)',
        '• user-group Executives (added by slack:U0ADMIN1 at 2026-11-27T10:00:00.000Z)',
      ].join('\n'),
    );
  });

  // Issue 10 point 4, third bullet: an exclusion added while an approved action waits still stops it.
  it('does not run an approved action whose asset was excluded before the job ran', async () => {
    const { store } = backend.open();
    const h = coreHarness({ store, policy: { exclusions: FILE } });
    await store.upsertIncident(incidentRecord('1'), [actionRecord('1', 'a')], []);
    expect((await approveAction(h.deps, { incidentId: '1', actionId: 'a' }, EXPERT)).ok).toBe(true);

    await changeExclusions(h.deps, add('device', 'ws-042.contoso.com'), ADMIN);
    const result = await executeAction(h.deps, { incidentId: '1', actionId: 'a' });

    expect(result).toMatchObject({
      status: 'done',
      action: { state: 'customerPending', excludedBy: 'device name ws-042.contoso.com' },
    });
    expect(h.executor.records).toEqual([]);
  });

  it('does not run an approved action whose asset is excluded between the execute-time check and the move to executing', async () => {
    const { store } = backend.open();
    const directory = new ExcludingWhileAsked(() =>
      changeExclusions(h.deps, add('device', 'ws-042.contoso.com'), ADMIN),
    );
    const h = coreHarness({
      store,
      directory,
      policy: { exclusions: { devices: [{ group: 'Domain Controllers' }], users: [] } },
    });
    await store.upsertIncident(incidentRecord('1'), [actionRecord('1', 'a')], []);
    expect((await approveAction(h.deps, { incidentId: '1', actionId: 'a' }, EXPERT)).ok).toBe(true);

    directory.armed = true;
    const result = await executeAction(h.deps, { incidentId: '1', actionId: 'a' });

    expect(directory.fired).toBe(true);
    expect(h.executor.records).toEqual([]);
    expect(result).toMatchObject({
      status: 'done',
      action: { state: 'customerPending', excludedBy: 'device name ws-042.contoso.com' },
    });
    const audit = await store.listAudit('1');
    expect(audit.map((e) => [e.event, e.outcome, e.detail])).toContainEqual([
      'execute',
      'refused',
      'asset_excluded: device name ws-042.contoso.com; now customerPending (exclusions changed while it was being started)',
    ]);
    expect(h.jobs.jobs).toContainEqual(
      expect.objectContaining({ kind: 'remind', incidentId: '1', actionId: 'a' }),
    );
  });
});

describe('GET /api/exclusions', () => {
  it('shows each rule in force with where it comes from, and takes its own answer back', async () => {
    const bot = await startBot();
    try {
      await changeExclusions(bot.runtime.deps, add('device-tag', 'Crown-Jewels'), ADMIN);
      await changeExclusions(
        bot.runtime.deps,
        { op: 'remove', kind: 'user', value: 'ceo@contoso.com' },
        ADMIN,
      );

      const read = await send(`${bot.url}/api/exclusions`, { token: ADMIN_TOKEN });

      expect(read.body).toEqual({
        devices: [
          { group: 'Finance-Servers', source: 'policy file' },
          { tag: 'VIP', source: 'policy file' },
          {
            tag: 'Crown-Jewels',
            source: expect.stringMatching(/^added by slack:U0ADMIN1 at \d{4}-\d\d-\d\dT/),
          },
        ],
        users: [{ group: 'Executives', source: 'policy file' }],
      });
      const putBack = await send(`${bot.url}/api/exclusions`, {
        method: 'PUT',
        token: ADMIN_TOKEN,
        body: read.body,
      });
      expect(putBack.status).toBe(200);
      expect(putBack.body).toEqual(read.body);
    } finally {
      await bot.close();
    }
  });
});

/**
 * An asset directory (evidence facts, as local mode has) that, the first time it is asked about a
 * device once armed, lets an admin change the exclusions before it answers: the interleaving of an
 * exclusion added while the execute-time check is running.
 */
class ExcludingWhileAsked implements AssetDirectory {
  armed = false;
  fired = false;
  private readonly facts = new StaticAssetDirectory();

  constructor(private readonly meanwhile: () => Promise<unknown>) {}

  async deviceFacts(
    device: { deviceId?: string; deviceName?: string },
    incident: IncidentRecord,
  ): Promise<DeviceFacts> {
    if (this.armed) {
      this.armed = false;
      this.fired = true;
      await this.meanwhile();
    }
    return this.facts.deviceFacts(device, incident);
  }

  resolveUser(user: UserReference, incident: IncidentRecord): Promise<DirectoryUser> {
    return this.facts.resolveUser(user, incident);
  }

  memberOfGroups(user: DirectoryUser, groups: string[]): Promise<string[]> {
    return this.facts.memberOfGroups(user, groups);
  }
}
