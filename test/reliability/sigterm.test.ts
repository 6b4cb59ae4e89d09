import { afterEach, expect, it } from 'vitest';
import { runSenders } from '../../bench/support/http.js';
import { type Bot, count, EXPERTS, FINAL_STATES, tally, World, waitUntil } from './support/world.js';

const APPROVALS = 60;
/** SIGTERM is sent once Defender has received this many of the approved actions. */
const SUBMITTED_AT_SIGTERM = 20;
/**
 * Longer than the stop limit: Defender is still working on what the replica submitted when it is told
 * to stop, so stopping in time cannot mean waiting for Defender.
 */
const DEFENDER_DELAY_MS = 15_000;
/** An orchestrator's grace period is longer; the bot must not need more than this. */
const STOP_WITHIN_MS = 10_000;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Approve every incident (clicks spread over `replicas`), then SIGTERM `victim` mid-storm. */
async function stormThenSigterm(w: World, replicas: Bot[], victim: Bot, ids: string[]) {
  await w.ingestAll(replicas, ids);
  const answers = await runSenders(ids, 25, (id, i) =>
    w.click(replicas[i % replicas.length]!, id, 'approve', EXPERTS[i % 2]!),
  );
  expect(tally(answers.map((a) => String(a.status)))).toEqual({ '200': ids.length });
  await waitUntil(
    'Defender received part of the approved actions',
    () => w.defenderPosts().length >= SUBMITTED_AT_SIGTERM,
    { timeoutMs: 60_000, pollMs: 10, describe: () => `${w.defenderPosts().length} received` },
  );
  const submittedAtStop = w.defenderPosts().length;
  const stop = await w.terminate(victim, STOP_WITHIN_MS);
  return { ...stop, submittedAtStop };
}

function stopped(stop: { ms: number; code: number | null; signal: NodeJS.Signals | null }): string {
  return stop.signal === 'SIGKILL'
    ? `still running ${(STOP_WITHIN_MS / 1000).toFixed(0)} s after SIGTERM, killed`
    : `stopped in ${(stop.ms / 1000).toFixed(1)} s (exit ${stop.code ?? stop.signal})`;
}

async function outcome(w: World, reader: Bot, ids: string[]) {
  const states = await w.waitForStates(reader, ids, FINAL_STATES, 150_000);
  await w.waitForIdleQueues(60_000);
  const submits = w.submitsByIncident();
  const perAction = ids.map((id) => submits.get(id) ?? 0);
  return {
    states: tally(states.values()),
    duplicates: perAction.filter((n) => n > 1).length,
    never: perAction.filter((n) => n === 0).length,
  };
}

it(`stops within ${STOP_WITHIN_MS / 1000} s on SIGTERM during a storm of ${APPROVALS} approvals, and the other replica finishes what it started`, async () => {
  world = await World.start({ defenderDelayMs: DEFENDER_DELAY_MS });
  const w = world;
  const [a, b] = [await w.startBot('replica-a'), await w.startBot('replica-b')];
  const ids = Array.from({ length: APPROVALS }, (_, i) => w.incidentId(i));
  const stop = await stormThenSigterm(w, [a, b], a, ids);
  const result = await outcome(w, b, ids);
  console.log(
    `SIGTERM to replica A with ${stop.submittedAtStop} of ${count(APPROVALS)} approvals submitted: ${stopped(stop)}; replica B finished ${JSON.stringify(result.states)}, ${result.duplicates} submitted more than once, ${result.never} never submitted`,
  );
  expect(stop.signal).toBeNull();
  expect(stop.ms).toBeLessThanOrEqual(STOP_WITHIN_MS);
  expect(result).toEqual({ states: { succeeded: APPROVALS }, duplicates: 0, never: 0 });
});

it(`stops within ${STOP_WITHIN_MS / 1000} s on SIGTERM during a storm of ${APPROVALS} approvals, and finishes what it started after restart`, async () => {
  world = await World.start({ defenderDelayMs: DEFENDER_DELAY_MS });
  const w = world;
  const only = await w.startBot('replica');
  const ids = Array.from({ length: APPROVALS }, (_, i) => w.incidentId(i));
  const stop = await stormThenSigterm(w, [only], only, ids);
  const restarted = await w.startBot('restarted replica');
  const result = await outcome(w, restarted, ids);
  console.log(
    `SIGTERM to the only replica with ${stop.submittedAtStop} of ${count(APPROVALS)} approvals submitted: ${stopped(stop)}; after restart ${JSON.stringify(result.states)}, ${result.duplicates} submitted more than once, ${result.never} never submitted`,
  );
  expect(stop.signal).toBeNull();
  expect(stop.ms).toBeLessThanOrEqual(STOP_WITHIN_MS);
  expect(result).toEqual({ states: { succeeded: APPROVALS }, duplicates: 0, never: 0 });
});
