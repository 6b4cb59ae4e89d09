import { afterEach, expect, it } from 'vitest';
import { runSenders } from '../../bench/support/http.js';
import { count, EXPERTS, FINAL_STATES, tally, World } from './support/world.js';

const APPROVALS = 200;
const CLICKS_EACH = 5;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

it(`executes each of ${APPROVALS} approvals exactly once when each is clicked ${CLICKS_EACH} times across two replicas`, async () => {
  world = await World.start({ defenderDelayMs: 2_000 });
  const w = world;
  const replicas = [await w.startBot('replica-a'), await w.startBot('replica-b')];
  const ids = Array.from({ length: APPROVALS }, (_, i) => w.incidentId(i));
  await w.ingestAll(replicas, ids);

  // The clicks on one approval are sent together, by both experts, to both replicas.
  const clicks = ids.flatMap((id) =>
    Array.from({ length: CLICKS_EACH }, (_, k) => ({ id, replica: replicas[k % 2]!, user: EXPERTS[k % 2]! })),
  );
  const answers = await runSenders(clicks, 50, (c) => w.click(c.replica, c.id, 'approve', c.user));
  expect(tally(answers.map((a) => String(a.status)))).toEqual({ '200': clicks.length });

  const states = await w.waitForStates(replicas[0]!, ids, FINAL_STATES, 150_000);
  await w.waitForIdleQueues(60_000);
  const submits = w.submitsByIncident();
  const perAction = ids.map((id) => submits.get(id) ?? 0);
  const duplicates = perAction.filter((n) => n > 1).length;
  const never = perAction.filter((n) => n === 0).length;
  const total = [...submits.values()].reduce((a, b) => a + b, 0);
  console.log(
    `${count(clicks.length)} clicks on ${count(APPROVALS)} approvals across 2 replicas: ${count(total)} Defender submissions, ${duplicates} actions submitted more than once, ${never} never submitted; states ${JSON.stringify(tally(states.values()))}`,
  );
  expect(tally(states.values())).toEqual({ succeeded: APPROVALS });
  expect({ duplicates, never, total }).toEqual({ duplicates: 0, never: 0, total: APPROVALS });
});
