import { afterEach, expect, it } from 'vitest';
import { runSenders } from '../../bench/support/http.js';
import { count, EXPERTS, tally, World, waitUntil } from './support/world.js';

const INCIDENTS = 500;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

it(`posts each of ${INCIDENTS} cards exactly once and ends on the final state while Slack answers 30% 429 and 10% 500`, async () => {
  world = await World.start({ slackFaults: { rateLimited: 0.3, serverError: 0.1, seed: 20_250_314 } });
  const w = world;
  const ledger = w.flakySlack!.ledger;
  const replicas = [await w.startBot('replica-a'), await w.startBot('replica-b')];
  const ids = Array.from({ length: INCIDENTS }, (_, i) => w.incidentId(i));
  await w.ingestAll(replicas, ids);
  await waitUntil('every card posted', () => ids.every((id) => ledger.posted.has(id)), {
    timeoutMs: 120_000,
    describe: () => `${ids.filter((id) => ledger.posted.has(id)).length} of ${INCIDENTS} posted`,
  });

  // Every card changes once more: each proposed action is rejected, so each card must be updated.
  const answers = await runSenders(ids, 25, (id, i) =>
    w.click(replicas[i % 2]!, id, 'reject', EXPERTS[i % 2]!),
  );
  expect(tally(answers.map((a) => String(a.status)))).toEqual({ '200': INCIDENTS });
  const states = await w.waitForStates(replicas[0]!, ids, new Set(['rejected']), 60_000);
  await w.waitForIdleQueues(120_000);

  const postedTwice = ids.filter((id) => (ledger.posted.get(id) ?? 0) > 1);
  const neverPosted = ids.filter((id) => !ledger.posted.has(id));
  // The card was posted with its Approve button; the last one Slack accepted shows the rejection instead.
  const withoutButton = ids.filter((id) => !ledger.firstCard.get(id)?.includes('approve:act-1'));
  const stale = ids.filter((id) => {
    const card = ledger.lastCard.get(id) ?? '';
    return !card.includes('Rejected') || card.includes('approve:act-1');
  });
  console.log(
    `${count(INCIDENTS)} incidents, ${count(ledger.calls)} card calls to Slack (${count(ledger.rateLimited)} answered 429, ${count(ledger.serverErrors)} answered 500): ${count(INCIDENTS - neverPosted.length)} cards posted, ${postedTwice.length} posted more than once, ${neverPosted.length} never; ${count(INCIDENTS - stale.length)} show the final state, ${stale.length} stale; states ${JSON.stringify(tally(states.values()))}`,
  );
  expect(ledger.rateLimited).toBeGreaterThan(0);
  expect(ledger.serverErrors).toBeGreaterThan(0);
  expect({ postedTwice, neverPosted, withoutButton, stale }).toEqual({
    postedTwice: [],
    neverPosted: [],
    withoutButton: [],
    stale: [],
  });
});
