import { afterEach, expect, it } from 'vitest';
import { runSenders } from '../../bench/support/http.js';
import { EXPERTS, FINAL_STATES, tally, World, waitUntil } from './support/world.js';

const IN_FLIGHT = 50;
/** The replica is killed once Defender has received this many of the actions. */
const SUBMITTED_AT_KILL = 25;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

it(`finishes all ${IN_FLIGHT} approvals in flight when their replica is killed (kill -9), each submitted to Defender once`, async () => {
  world = await World.start({ defenderDelayMs: 2_000 });
  const w = world;
  const first = await w.startBot('replica');
  const ids = Array.from({ length: IN_FLIGHT }, (_, i) => w.incidentId(i));
  await w.ingestAll([first], ids);

  const answers = await runSenders(ids, 25, (id, i) => w.click(first, id, 'approve', EXPERTS[i % 2]!));
  expect(tally(answers.map((a) => String(a.status)))).toEqual({ '200': IN_FLIGHT });
  await waitUntil(
    'Defender received part of the approved actions',
    () => w.defenderPosts().length >= SUBMITTED_AT_KILL,
    {
      timeoutMs: 60_000,
      pollMs: 10,
      describe: () => `${w.defenderPosts().length} received`,
    },
  );
  await w.kill(first);
  const submittedAtKill = w.defenderPosts().length;

  const restarted = await w.startBot('restarted replica');
  const atRestart = await w.actionStates(restarted, ids);
  const states = await w.waitForStates(restarted, ids, FINAL_STATES, 150_000);
  await w.waitForIdleQueues(60_000);
  const submits = w.submitsByIncident();
  const perAction = ids.map((id) => submits.get(id) ?? 0);
  const duplicates = perAction.filter((n) => n > 1).length;
  const never = perAction.filter((n) => n === 0).length;
  console.log(
    `kill -9 with ${IN_FLIGHT} approvals in flight (${submittedAtKill} submitted to Defender, states at restart ${JSON.stringify(tally(atRestart.values()))}): after restart ${JSON.stringify(tally(states.values()))}, ${duplicates} submitted more than once, ${never} never submitted`,
  );
  // Final: Defender said how it ended. The fake Defender completes every action, but an action whose
  // remote id was lost in the crash may end failed ("could not confirm") rather than be sent twice.
  expect([...states.values()].filter((s) => s !== 'succeeded' && s !== 'failed')).toEqual([]);
  expect({ duplicates, never }).toEqual({ duplicates: 0, never: 0 });
});
