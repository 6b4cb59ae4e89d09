import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { StaticAssetDirectory } from '../../adapters/static-directory.js';
import { buildRuntime } from '../../bot/compose.js';
import { loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { createPlatforms } from '../../bot/platforms.js';
import type { Runtime } from '../../bot/runtime.js';
import { createHttpApp } from '../../bot/server.js';
import { buttonValue } from '../../cards/slack/render.js';
import { INGEST_TOKEN, send } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';
import { PrivateRedisCluster } from '../support/redis-cluster.js';
import {
  clickButton,
  recordSlackBodies,
  SLACK_API_URL,
  SLACK_BOT_TOKEN,
  SLACK_SIGNING_SECRET,
} from '../support/slack.js';
import {
  answerStatusQuery,
  CLIENT_ID,
  fixture,
  GRAPH_URL,
  LOGIN,
  MDE_ORIGIN,
  MDE_TOKEN,
  MDE_URL,
  nockLogin,
  TENANT,
} from './defender-helpers.js';

const MACHINE = '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1';
const PREFIX = 'mdr-cluster-test:';
const WAIT = { timeout: 20_000, interval: 50 };

/** A bot process as bot/main.ts builds it from its environment, on a loopback port. */
interface Replica {
  url: string;
  runtime: Runtime;
  close(): Promise<void>;
}

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const config = loadConfig(env);
  const runtime = buildRuntime(config, createLogger(config.logLevel), {
    // Device facts from the incident (as the other integration tests): Defender's machine API is not faked.
    directory: new StaticAssetDirectory(),
  });
  let server: Server;
  try {
    const platforms = await createPlatforms(runtime, env);
    const app = createHttpApp(runtime, platforms.mounts);
    await runtime.queue.start();
    await runtime.startTimers();
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    runtime,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await runtime.close();
    },
  };
}

let cluster: PrivateRedisCluster;
let nodes: Redis[] = [];
let dir: string;
const replicas: Replica[] = [];
const slackPosts: string[] = [];
const slackUpdates: string[] = [];
const isolations: string[] = [];

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start(3);
  nodes = cluster.nodes();
  dir = mkdtempSync(join(tmpdir(), 'mdr-cluster-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, 'roles:\n  experts: [slack:U0EXPERT1]\nchannels:\n  slack: C0SOC\n');

  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  recordSlackBodies({ posts: slackPosts, updates: slackUpdates });
  nockLogin();
  const machineAction = (id: string, status: string, comment = '') =>
    fixture('machine-action', { id, status, machineId: MACHINE, requestorComment: comment });
  const defender = nock(MDE_ORIGIN, { reqheaders: { authorization: `Bearer ${MDE_TOKEN}` } }).persist();
  defender.post(`/prefix/api/machines/${MACHINE}/isolate`).reply((_uri, body) => {
    const id = `ma-${isolations.length}`;
    isolations.push(id);
    return [201, machineAction(id, 'Pending', (body as { Comment?: string }).Comment ?? '')];
  });
  answerStatusQuery(defender, (id) => machineAction(id, 'Succeeded'));

  const env = {
    REDIS_URL: cluster.url,
    REDIS_CLUSTER: 'true',
    REDIS_KEY_PREFIX: PREFIX,
    POLICY_FILE: policy,
    INGEST_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET,
    SLACK_API_URL,
    DEFENDER_TENANT_ID: TENANT,
    DEFENDER_CLIENT_ID: CLIENT_ID,
    DEFENDER_CLIENT_SECRET: 'test-secret-value',
    AZURE_AUTHORITY_HOST: LOGIN,
    DEFENDER_API_URL: MDE_URL,
    GRAPH_API_URL: GRAPH_URL,
    DEFENDER_FOLLOW_SECONDS: '1',
    LOG_LEVEL: 'silent',
  };
  for (let i = 0; i < 2; i++) replicas.push(await startReplica(env));
});

afterAll(async () => {
  for (const replica of replicas.splice(0)) await replica.close();
  for (const node of nodes) node.disconnect();
  nock.cleanAll();
  nock.enableNetConnect();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The bot's keys on each master (a cluster's SCAN covers one node). */
async function keysByNode(): Promise<string[][]> {
  return Promise.all(
    nodes.map(async (node) => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 500);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      return keys;
    }),
  );
}

describe('two replicas on a 3-master Redis Cluster (REDIS_CLUSTER=true)', () => {
  it('ingest, approval and execution work as on one Redis: one card, one Defender call, the result on the card', async () => {
    const [a, b] = replicas as [Replica, Replica];
    expect(a.runtime.storeKind).toBe('redis');
    const ingested = await send(`${a.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(ingested.status).toBe(201);
    const again = await send(`${b.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });
    expect(again.status).toBe(200);
    await vi.waitFor(async () => {
      expect(slackPosts).toHaveLength(1);
      expect((await b.runtime.store.getCardRefs('48213')).slack).toBeDefined();
    }, WAIT);

    const button = { action_id: 'approve:act-1', value: buttonValue('48213', 'act-1') };
    const clicks = await Promise.all(
      Array.from({ length: 6 }, (_, i) => clickButton((i % 2 ? a : b).url, 'U0EXPERT1', button)),
    );
    expect(clicks.map((c) => c.status)).toEqual(Array(6).fill(200));

    await vi.waitFor(async () => {
      const read = await send(`${a.url}/api/incidents/48213`, { token: INGEST_TOKEN });
      expect(read.body.actions.find((x: { id: string }) => x.id === 'act-1')).toMatchObject({
        state: 'succeeded',
      });
    }, WAIT);
    expect(await b.runtime.store.getAction('48213', 'act-1')).toMatchObject({ externalId: 'ma-0' });
    expect(isolations).toEqual(['ma-0']);
    await vi.waitFor(() => expect(slackUpdates.some((u) => u.includes('Isolated by'))).toBe(true), WAIT);
    expect(slackPosts).toHaveLength(1);
    const audit = await b.runtime.store.listAudit('48213');
    expect(audit.filter((e) => e.event === 'approve' && e.outcome === 'ok')).toHaveLength(1);

    // The keys really are spread over the masters, and BullMQ's all sit in the one slot of its hash tag.
    const byNode = await keysByNode();
    expect(byNode.filter((keys) => keys.length > 0).length).toBeGreaterThanOrEqual(2);
    const bullNodes = byNode.filter((keys) => keys.some((k) => k.startsWith(`${PREFIX}{bull}:`)));
    expect(bullNodes).toHaveLength(1);
  });
});
