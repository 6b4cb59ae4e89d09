import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMqQueue } from '../../adapters/bullmq-queue.js';
import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { RedisStore } from '../../adapters/redis-store.js';
import { createLogger } from '../../bot/logger.js';
import { createSlack } from '../../bot/slack/create-slack.js';
import { buttonValue } from '../../cards/slack/render.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';
import {
  clickButton,
  recordSlackBodies,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
} from '../support/slack.js';

let redis: TestRedis;
let dir: string;
const replicas: { bot: BotServer; executor: DryRunExecutor }[] = [];
const posts: string[] = [];
const updates: string[] = [];

beforeAll(async () => {
  redis = await useTestRedis(import.meta.filename);
  dir = mkdtempSync(join(tmpdir(), 'mdr-replicas-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, 'roles:\n  experts: [slack:U0EXPERT1, slack:U0EXPERT2]\nchannels:\n  slack: C0SOC\n');
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  recordSlackBodies({ posts, updates, numberPosts: true });

  for (let i = 0; i < 2; i++) {
    const executor = new DryRunExecutor();
    const bot = await startBot({
      env: { POLICY_FILE: policy, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL },
      parts: {
        store: new RedisStore({ url: redis.url }, redis.prefix),
        storeKind: 'redis',
        queue: new BullMqQueue({
          url: redis.url,
          keyPrefix: redis.prefix,
          logger: createLogger('silent'),
          backoffMs: 100,
        }),
        executor,
      },
      mounts: (runtime) => ({ slack: createSlack(runtime).handler }),
    });
    replicas.push({ bot, executor });
  }
});

afterAll(async () => {
  for (const { bot } of replicas) await bot.close();
  nock.cleanAll();
  nock.enableNetConnect();
  await redis.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('two bot processes on one Redis', () => {
  it('behave as one: one card, one execution of clicks split across both, both see the result', async () => {
    const [a, b] = replicas.map((r) => r.bot) as [BotServer, BotServer];
    expect(
      (await send(`${a.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) }))
        .status,
    ).toBe(201);
    expect(
      (await send(`${b.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody(shippedSample()) }))
        .status,
    ).toBe(200);
    await expect.poll(() => posts.length, { timeout: 10_000 }).toBe(1);

    const button = { action_id: 'approve:act-1', value: buttonValue('48213', 'act-1') };
    const clicks = Array.from({ length: 20 }, (_, i) =>
      clickButton((i % 2 ? a : b).url, i % 3 ? 'U0EXPERT1' : 'U0EXPERT2', button),
    );
    const answers = await Promise.all(clicks);
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));

    await expect
      .poll(async () => (await b.runtime.store.getAction('48213', 'act-1'))?.state, { timeout: 15_000 })
      .toBe('succeeded');
    const runs = replicas.flatMap((r) => r.executor.records).filter((r) => r.actionId === 'act-1');
    expect(runs).toHaveLength(1);
    await expect.poll(() => updates.some((u) => u.includes('Isolated by')), { timeout: 15_000 }).toBe(true);
    expect(posts).toHaveLength(1);
    const read = await send(`${a.url}/api/incidents/48213`, { token: INGEST_TOKEN });
    expect(read.body.actions.find((x: { id: string }) => x.id === 'act-1')).toMatchObject({
      state: 'succeeded',
    });
  });
});
