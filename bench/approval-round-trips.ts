/**
 * Counts the Redis round trips of one expert approval before it is acknowledged: loadForDecision,
 * compareAndSet and the execute job's enqueue, each through a counting TCP proxy (`npm run bench`).
 */
import { BullMqQueue } from '../adapters/bullmq-queue.js';
import { DryRunExecutor } from '../adapters/dry-run-executor.js';
import { RedisStore } from '../adapters/redis-store.js';
import { StaticAssetDirectory } from '../adapters/static-directory.js';
import { loadConfig } from '../bot/config.js';
import { createLogger } from '../bot/logger.js';
import { assembleRuntime } from '../bot/runtime.js';
import { approveAction } from '../core/approve-action.js';
import { type Actor, transition } from '../core/decisions.js';
import type { ActionRecord, IncidentRecord } from '../core/model.js';
import type { CoreDeps, CoreJob } from '../core/ports.js';
import { RoundTripProxy } from '../test/support/round-trip-proxy.js';

/** Round trips (and the commands sent) of one approval, step by step and through core's approveAction. */
export interface ApprovalRoundTrips {
  loadForDecision: number;
  compareAndSet: number;
  enqueue: number;
  /** The three steps above, one after the other. */
  total: number;
  /** `approveAction()` of core end to end, with a notifier that sends nothing. */
  approveAction: number;
  /** `approveAction()` as the bot runs it: the real scheduler and card notifier with Slack and Teams on. */
  approveActionBothPlatforms: number;
  commands: string[];
}

const EXPERT: Actor = { id: 'slack:U0EXPERT1', platform: 'slack' };

function incident(id: string): IncidentRecord {
  const now = new Date().toISOString();
  return {
    id,
    title: 'bench',
    severity: 'high',
    status: 'active',
    portalUrl: `https://security.microsoft.com/incidents/${id}`,
    summary: '',
    createdAt: now,
    updatedAt: now,
    receivedAt: now,
    devices: [{ id: 'dev-1', dnsName: 'ws-042.contoso.com', tags: [] }],
    users: [],
    files: [],
    messages: [],
  };
}

function action(incidentId: string, id: string): ActionRecord {
  const now = new Date().toISOString();
  return {
    incidentId,
    id,
    type: 'isolateDevice',
    target: { deviceId: 'dev-1' },
    state: 'proposed',
    excludedBy: null,
    decidedBy: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
}

/** Measures on the Redis at `url`, under `prefix` (keys are left for the caller to delete). */
export async function measureApprovalRoundTrips(url: string, prefix: string): Promise<ApprovalRoundTrips> {
  const proxy = await RoundTripProxy.start(url);
  const store = new RedisStore({ url: proxy.url }, prefix);
  const queue = new BullMqQueue({ url: proxy.url, keyPrefix: prefix });
  const jobs = {
    async schedule(job: CoreJob) {
      await queue.add(job.kind, job, {
        id: `${job.kind}-${job.incidentId}-${'actionId' in job ? job.actionId : job.event}`,
        attempts: 3,
      });
    },
  };
  const deps: CoreDeps = {
    store,
    directory: new StaticAssetDirectory(),
    executor: new DryRunExecutor(),
    clock: { now: () => new Date() },
    notifier: { incidentChanged: async () => {}, taskOverdue: async () => {} },
    jobs,
    policy: {
      roles: { experts: [EXPERT.id], admins: [] },
      exclusions: { devices: [], users: [] },
      reminders: { pendingTaskHours: 24 },
    },
  };
  try {
    const ids = ['warm-up', 'steps', 'core', 'wired-warm-up', 'wired'];
    await store.upsertIncident(
      incident('1'),
      ids.map((id) => action('1', id)),
      [],
    );
    // Scripts are loaded on first use (and BullMQ checks the server once): measure the steady state.
    await approveAction(deps, { incidentId: '1', actionId: 'warm-up' }, EXPERT);

    const count = async (step: () => Promise<unknown>) => {
      proxy.reset();
      await step();
      return proxy.roundTrips;
    };
    let loaded: Awaited<ReturnType<RedisStore['loadForDecision']>> = null;
    const loadForDecision = await count(async () => {
      loaded = await store.loadForDecision('1', 'steps');
    });
    const current = (loaded as { action: ActionRecord } | null)?.action ?? action('1', 'steps');
    const compareAndSet = await count(() =>
      transition(deps, current, 'approved', { decidedBy: EXPERT.id }, { actor: EXPERT, event: 'approve' }),
    );
    const enqueue = await count(() => jobs.schedule({ kind: 'execute', incidentId: '1', actionId: 'steps' }));
    proxy.reset();
    const result = await approveAction(deps, { incidentId: '1', actionId: 'core' }, EXPERT);
    if (!result.ok) throw new Error(`approval refused: ${result.code} ${result.message}`);
    const approveActionCore = proxy.roundTrips;

    // The bot's own wiring: QueueScheduler + DeliveryNotifier with a Slack and a Teams publisher (the
    // queue is not started, so nothing is delivered: only what happens before the acknowledgement counts).
    const idle = async () => {};
    const runtime = assembleRuntime(loadConfig({ LOG_LEVEL: 'silent' }), createLogger('silent'), {
      store,
      queue,
      publishers: [
        { platform: 'slack', deliver: idle, remind: idle },
        { platform: 'teams', deliver: idle, remind: idle },
      ],
    });
    const wiredDeps = { ...runtime.deps, policy: deps.policy };
    await approveAction(wiredDeps, { incidentId: '1', actionId: 'wired-warm-up' }, EXPERT);
    proxy.reset();
    const wired = await approveAction(wiredDeps, { incidentId: '1', actionId: 'wired' }, EXPERT);
    if (!wired.ok) throw new Error(`approval refused: ${wired.code} ${wired.message}`);
    return {
      loadForDecision,
      compareAndSet,
      enqueue,
      total: loadForDecision + compareAndSet + enqueue,
      approveAction: approveActionCore,
      approveActionBothPlatforms: proxy.roundTrips,
      commands: proxy.commands(),
    };
  } finally {
    await queue.close();
    await store.close();
    await proxy.close();
  }
}
