import { afterEach, expect, it } from 'vitest';
import { type Exchange, runSenders } from '../../bench/support/http.js';
import { count, tally, World, waitUntil } from './support/world.js';

const INCIDENTS = 400;
const SENDERS = 10;
/**
 * Redis is killed once this many ingests were answered and this many new cards were posted by Slack
 * without the bot having its answer yet; it is started again after this many 503s.
 */
const ANSWERED_AT_CRASH = 100;
const CARDS_IN_FLIGHT_AT_CRASH = 3;
const REFUSED_BEFORE_RESTART = 20;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

it(`loses none of ${INCIDENTS} ingests when Redis is restarted during the stream: each is 2xx and stored, or 503 and stored on retry`, async () => {
  // Slack without faults, through the recorder, to count each incident's card posts.
  world = await World.start({ durableRedis: true, slackFaults: { rateLimited: 0, serverError: 0, seed: 1 } });
  const w = world;
  const slack = w.flakySlack!;
  const ledger = slack.ledger;
  const bot = await w.startBot('replica');
  const ids = Array.from({ length: INCIDENTS }, (_, i) => w.incidentId(i));

  let answered = 0;
  let refusedSinceCrash = 0;
  let crashed = false;
  let cardsInFlight = 0;
  let streamDone = false;
  const stream = runSenders(ids, SENDERS, async (id) => {
    const answer = await w.ingest(bot, id);
    answered += 1;
    if (crashed && answer.status === 503) refusedSinceCrash += 1;
    return answer;
  });
  void stream.finally(() => {
    streamDone = true;
  });
  const outage = (async () => {
    await waitUntil('the ingest stream is under way', () => answered >= ANSWERED_AT_CRASH || streamDone, {
      timeoutMs: 60_000,
      pollMs: 5,
    });
    slack.hold();
    await waitUntil('card posts in flight', () => slack.held >= CARDS_IN_FLIGHT_AT_CRASH || streamDone, {
      timeoutMs: 30_000,
      pollMs: 5,
    });
    cardsInFlight = slack.held;
    await w.redis.crash();
    crashed = true;
    slack.release();
    await waitUntil(
      'ingests are refused with 503 while Redis is down',
      () => refusedSinceCrash >= REFUSED_BEFORE_RESTART || streamDone,
      { timeoutMs: 60_000, pollMs: 5, describe: () => `${refusedSinceCrash} refused, ${answered} answered` },
    );
    await w.redis.start();
  })();
  const [first] = await Promise.all([stream, outage]);

  // The sender retries what was refused until it is accepted.
  const finalAnswers: Exchange[] = [...first];
  const retryAnswers: Exchange[] = [];
  for (let round = 0; ; round++) {
    const open = ids.flatMap((_, i) => (finalAnswers[i]!.status === 503 ? [i] : []));
    if (open.length === 0) break;
    if (round >= 100) throw new Error(`${open.length} ingests still refused after 100 rounds of retries`);
    const again = await runSenders(open, SENDERS, (i) => w.ingest(bot, ids[i]!));
    open.forEach((i, k) => {
      finalAnswers[i] = again[k]!;
    });
    retryAnswers.push(...again);
    // Still refused: the sender retries once the bot says its store is reachable again.
    if (again.some((a) => a.status === 503)) {
      await waitUntil('the bot is ready again', async () => (await fetch(`${bot.url}/readyz`)).ok, {
        timeoutMs: 60_000,
        pollMs: 50,
      });
    }
  }

  const firstTally = tally(first.map((a) => String(a.status)));
  const refused = first.filter((a) => a.status === 503).length;
  const unexpected = [...first, ...retryAnswers].filter((a) => ![200, 201, 503].includes(a.status));
  const stored = await w.actionStates(bot, ids);
  const lost = ids.filter((id) => stored.get(id) !== 'proposed');
  await waitUntil(
    'every stored incident has its Slack card',
    () => ids.every((id) => ledger.posted.has(id)),
    {
      timeoutMs: 60_000,
      describe: () => `${ids.filter((id) => ledger.posted.has(id)).length} of ${ids.length} posted`,
    },
  );
  const postedTwice = ids.filter((id) => (ledger.posted.get(id) ?? 0) > 1);
  console.log(
    `${count(INCIDENTS)} ingests, Redis killed (${cardsInFlight} card posts in flight) and restarted mid-stream: first answers ${JSON.stringify(firstTally)}, ${refused} refused with 503 and accepted on retry (${retryAnswers.length} retries), ${unexpected.length} other answers; ${count(INCIDENTS - lost.length)} stored, ${lost.length} lost; ${ledger.posted.size} cards posted, ${postedTwice.length} more than once`,
  );
  expect(refused).toBeGreaterThan(0);
  expect(unexpected.map((a) => `${a.status} ${a.body.slice(0, 200)}`)).toEqual([]);
  expect(lost).toEqual([]);
  expect(postedTwice).toEqual([]);
});
