import { describe, expect, it } from 'vitest';
import { LocalQueue } from '../../../adapters/local-queue.js';
import { MemoryStore } from '../../../adapters/memory-store.js';
import { type CardPublisher, type DeliveryContext, runDelivery } from '../../../bot/delivery.js';
import { createLogger } from '../../../bot/logger.js';
import { buildIncidentView } from '../../../cards/incident-view.js';
import type { IncidentCardView } from '../../../cards/view-types.js';
import type { IncidentState } from '../../../core/model.js';
import { incidentState } from '../../support/incident-factory.js';

/** A platform that renders the delivery's view model, as the Slack and Teams publishers do. */
class ViewingPublisher implements CardPublisher {
  readonly views: IncidentCardView[] = [];
  builds = 0;
  constructor(readonly platform: 'slack' | 'teams') {}
  async deliver(state: IncidentState, context: DeliveryContext): Promise<void> {
    const build = () => {
      this.builds += 1;
      return buildIncidentView(state);
    };
    this.views.push(context.view ? context.view(build) : build());
  }
  async remind(): Promise<void> {}
}

describe('a card delivery run', () => {
  it('builds the incident view model once, for the cards of both platforms', async () => {
    const store = new MemoryStore();
    const { incident, actions } = incidentState();
    await store.upsertIncident(incident, actions, []);
    const slack = new ViewingPublisher('slack');
    const teams = new ViewingPublisher('teams');
    const queue = new LocalQueue({ logger: { error: () => {}, warn: () => {} } });

    await runDelivery(
      { incidentId: incident.id },
      { store, queue, publishers: [slack, teams], logger: createLogger('silent'), exclusive: true },
    );

    expect(slack.builds + teams.builds).toBe(1);
    expect(slack.views[0]?.incidentId).toBe(incident.id);
    expect(teams.views[0]).toBe(slack.views[0]);
  });

  it('builds it again for the next run, from the state that run read', async () => {
    const store = new MemoryStore();
    const { incident, actions } = incidentState();
    await store.upsertIncident(incident, actions, []);
    const slack = new ViewingPublisher('slack');
    const queue = new LocalQueue({ logger: { error: () => {}, warn: () => {} } });
    const deps = { store, queue, publishers: [slack], logger: createLogger('silent'), exclusive: true };

    await runDelivery({ incidentId: incident.id }, deps);
    await store.upsertIncident({ ...incident, title: 'Renamed incident' }, [], []);
    await runDelivery({ incidentId: incident.id }, deps);

    expect(slack.builds).toBe(2);
    const before = buildIncidentView({ incident, actions }).title;
    expect(slack.views.map((v) => v.title)).toEqual([before, 'Renamed incident']);
  });
});
