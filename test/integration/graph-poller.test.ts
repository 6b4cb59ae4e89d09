import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GraphIncidentSource } from '../../adapters/graph-incident-source.js';
import { IncidentPoller } from '../../bot/incident-poller.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { ManualClock, sampleIngestBody } from '../support/core-harness.js';
import { GRAPH_ORIGIN, GRAPH_TOKEN, GRAPH_URL, nockLogin, testCredential } from './defender-helpers.js';

const page = (n: number) =>
  JSON.parse(readFileSync(new URL(`../fixtures/graph/incidents-page-${n}.json`, import.meta.url), 'utf8'));
const clock = new ManualClock(new Date('2026-11-27T10:00:00Z'));
let bot: BotServer;

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
});
afterEach(async () => {
  await bot?.close();
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

function poller(intervalSeconds = 60) {
  const source = new GraphIncidentSource({
    credential: testCredential(),
    graphApiUrl: GRAPH_URL,
    sleep: async () => {},
  });
  return new IncidentPoller(bot.runtime, source, intervalSeconds);
}

describe('polling Graph security incidents (GRAPH_POLL_SECONDS)', () => {
  it('ingests every page, keeping the actions and summary already received', async () => {
    bot = await startBot({ parts: { clock } });
    nockLogin();
    await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: sampleIngestBody() });
    const requests: { query: string; auth: string | undefined }[] = [];
    nock(GRAPH_ORIGIN)
      .get('/msgraph/v1.0/security/incidents')
      .query(true)
      .times(2)
      .reply(function (uri) {
        requests.push({
          query: decodeURIComponent(uri.split('?')[1] ?? ''),
          auth: this.req.headers.authorization as string,
        });
        return [200, uri.includes('$skip=50') ? page(2) : page(1)];
      });

    expect(await poller(60).pollOnce()).toBe(2);

    expect(requests[0]).toEqual({
      query: '$expand=alerts&$filter=lastUpdateDateTime ge 2026-11-27T09:58:00.000Z&$top=50',
      auth: `Bearer ${GRAPH_TOKEN}`,
    });
    expect(requests).toHaveLength(2);
    const known = (await send(`${bot.url}/api/incidents/48213`, { token: INGEST_TOKEN })).body;
    expect(known).toMatchObject({ severity: 'medium', summary: expect.stringContaining('Invoice_0314.exe') });
    expect(known.actions).toHaveLength(6);
    const polled = (await send(`${bot.url}/api/incidents/48214`, { token: INGEST_TOKEN })).body;
    expect(polled).toMatchObject({
      title: 'Password spray against the VPN',
      managedStatus: 'active',
      actions: [],
    });
  });

  it('polls again when asked again (one run per interval across replicas comes from the job scheduler)', async () => {
    bot = await startBot({ parts: { clock } });
    nockLogin();
    const scope = nock(GRAPH_ORIGIN)
      .get('/msgraph/v1.0/security/incidents')
      .query(true)
      .times(2)
      .reply(200, page(2));
    expect(await poller().pollOnce()).toBe(1);
    expect(await poller().pollOnce()).toBe(1);
    expect(scope.isDone()).toBe(true);
  });

  it('fails with the missing permission named when Graph answers 403', async () => {
    bot = await startBot({ parts: { clock } });
    nockLogin();
    nock(GRAPH_ORIGIN)
      .get('/msgraph/v1.0/security/incidents')
      .query(true)
      .reply(403, {
        error: {
          code: 'Forbidden',
          message: 'Missing application roles. API required roles: SecurityIncident.Read.All',
        },
      });
    await expect(poller().pollOnce()).rejects.toThrow(/403 Forbidden .*SecurityIncident\.Read\.All/);
  });
});
