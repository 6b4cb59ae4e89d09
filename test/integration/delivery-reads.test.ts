import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalQueue } from '../../adapters/local-queue.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { type CardPublisher, type DeliveryContext, runDelivery } from '../../bot/delivery.js';
import { createLogger } from '../../bot/logger.js';
import type { CardRefs, IncidentState } from '../../core/model.js';
import { incidentState } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import { RoundTripProxy } from '../support/round-trip-proxy.js';

/** A platform that checks the pause of each of its channels, as the Slack and Teams publishers do. */
class PausingPublisher implements CardPublisher {
  readonly seen = new Map<string, number>();
  constructor(
    readonly platform: 'slack' | 'teams',
    private readonly channels: string[],
    private readonly store: RedisStore,
  ) {}
  async deliver(_state: IncidentState, context: DeliveryContext): Promise<void> {
    for (const channel of this.channels) {
      this.seen.set(
        channel,
        await (context.pausedUntil?.(channel) ?? this.store.channelPausedUntil(channel)),
      );
    }
  }
  async remind(): Promise<void> {}
  async pauseNames(_refs: CardRefs): Promise<string[]> {
    return this.channels;
  }
}

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
});
afterAll(async () => {
  await redis?.cleanup();
});

describe('a card delivery run on Redis', () => {
  it("reads the incident, its card references and the pauses of every platform's channels, those in one command", async () => {
    const proxy = await RoundTripProxy.start(redis.url);
    const store = new RedisStore({ url: `${proxy.url}${new URL(redis.url).pathname}` }, redis.prefix);
    const { incident, actions } = incidentState();
    await store.upsertIncident(incident, actions, []);
    const until = Date.now() + 60_000;
    await store.pauseChannel('teams:19:b@thread.tacv2', until);
    const slack = new PausingPublisher('slack', ['slack:C0SOC'], store);
    const teams = new PausingPublisher(
      'teams',
      ['teams:19:a@thread.tacv2', 'teams:19:b@thread.tacv2'],
      store,
    );
    const queue = new LocalQueue({ logger: { error: () => {}, warn: () => {} } });
    const deps = {
      store,
      queue,
      publishers: [slack, teams],
      logger: createLogger('silent'),
      exclusive: true,
    };
    proxy.reset();

    await runDelivery({ incidentId: incident.id }, deps);
    const first = proxy.commands().map((c) => c.toLowerCase());
    proxy.reset();
    await runDelivery({ incidentId: incident.id }, deps);

    expect([...slack.seen, ...teams.seen]).toEqual([
      ['slack:C0SOC', 0],
      ['teams:19:a@thread.tacv2', 0],
      ['teams:19:b@thread.tacv2', until],
    ]);
    expect(first).toEqual(['get', 'hgetall', 'lrange', 'hgetall', 'mget']);
    // The order of the incident's actions, read once, holds while no action is added.
    expect(proxy.commands().map((c) => c.toLowerCase())).toEqual(['get', 'hgetall', 'hgetall', 'mget']);
    await store.close();
    await proxy.close();
  });
});
