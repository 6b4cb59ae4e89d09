import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalQueue } from '../../../adapters/local-queue.js';
import { MemoryStore } from '../../../adapters/memory-store.js';
import {
  type CardPublisher,
  DELIVER_JOB,
  type DeliverJob,
  DeliveryNotifier,
  runDelivery,
  UPDATE_GATHER_MS,
} from '../../../bot/delivery.js';
import { createLogger } from '../../../bot/logger.js';
import type { IncidentState } from '../../../core/model.js';
import { ManualClock } from '../../support/core-harness.js';
import { incidentState } from '../../support/incident-factory.js';

/** A platform that records when each card delivery reached it (fake time). */
class RecordingPublisher implements CardPublisher {
  readonly platform = 'slack' as const;
  readonly deliveries: { incidentId: string; at: number; actions: string[] }[] = [];
  /** While set, a delivery waits for it (as a slow platform would). */
  hold: Promise<void> | undefined;
  async deliver(state: IncidentState): Promise<void> {
    this.deliveries.push({
      incidentId: state.incident.id,
      at: Date.now(),
      actions: state.actions.map((a) => `${a.id}:${a.state}`),
    });
    await this.hold;
  }
  async remind(): Promise<void> {}
}

let queue: LocalQueue;
let store: MemoryStore;
let publisher: RecordingPublisher;
let notifier: DeliveryNotifier;
let start: number;

beforeEach(async () => {
  vi.useFakeTimers({ now: new Date('2026-11-27T10:00:00Z') });
  start = Date.now();
  queue = new LocalQueue({ backoffMs: 20, logger: { error: () => {}, warn: () => {} } });
  store = new MemoryStore();
  publisher = new RecordingPublisher();
  notifier = new DeliveryNotifier(queue, [publisher], new ManualClock());
  const logger = createLogger('silent');
  queue.process(DELIVER_JOB, (data) =>
    runDelivery(data as DeliverJob, { store, queue, publishers: [publisher], logger }),
  );
  await queue.start();
  const { incident, actions } = incidentState();
  await store.upsertIncident(incident, actions, []);
});
afterEach(async () => {
  await queue.close();
  vi.useRealTimers();
});

describe('the delivery window (fake time)', () => {
  it("posts a new incident's card at once", async () => {
    await notifier.incidentChanged('48213', { created: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(publisher.deliveries.map((d) => d.at - start)).toEqual([0]);
  });

  it('gathers the changes of the next UPDATE_GATHER_MS into one update showing the latest state', async () => {
    await notifier.incidentChanged('48213');
    await vi.advanceTimersByTimeAsync(UPDATE_GATHER_MS - 1);
    for (let i = 0; i < 9; i++) await notifier.incidentChanged('48213');
    expect(publisher.deliveries).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(publisher.deliveries.map((d) => d.at - start)).toEqual([UPDATE_GATHER_MS]);
    await vi.runAllTimersAsync();
    expect(publisher.deliveries).toHaveLength(1);
  });

  it('delivers a change made while a delivery runs in one more delivery after it, with the latest state', async () => {
    let release: () => void = () => {};
    publisher.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    await notifier.incidentChanged('48213', { created: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(publisher.deliveries).toHaveLength(1);

    const [action] = (await store.getIncident('48213'))?.actions ?? [];
    for (let i = 0; i < 5; i++) await notifier.incidentChanged('48213');
    await store.compareAndSet(
      { ...action!, state: 'rejected', version: action!.version + 1 },
      action!.version,
      {
        at: new Date().toISOString(),
        actor: 'slack:U0EXPERT1',
        platform: 'slack',
        event: 'reject',
        outcome: 'ok',
        incidentId: '48213',
        actionId: action!.id,
        detail: '',
      },
    );
    publisher.hold = undefined;
    release();
    await vi.runAllTimersAsync();

    expect(publisher.deliveries).toHaveLength(2);
    expect(publisher.deliveries[1]?.actions).toContain(`${action!.id}:rejected`);
  });
});
