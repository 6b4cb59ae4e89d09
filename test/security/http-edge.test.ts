import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalQueue } from '../../adapters/local-queue.js';
import { MemoryStore } from '../../adapters/memory-store.js';
import { describeRuntime } from '../../bot/compose.js';
import { ConfigError, loadConfig } from '../../bot/config.js';
import { createLogger } from '../../bot/logger.js';
import { assembleRuntime } from '../../bot/runtime.js';
import { buildIncidentView } from '../../cards/incident-view.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody, shippedSample } from '../support/incident-factory.js';

const TENANT = '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55';
const SLACK = { SLACK_BOT_TOKEN: 'xoxb-1-2-3', SLACK_SIGNING_SECRET: 'abcdef0123456789abcdef' };

let bot: BotServer | undefined;
afterEach(async () => {
  await bot?.close();
  bot = undefined;
});

describe('bad URLs and metrics', () => {
  it('answers 400 invalid_url before authentication to a path that is not valid percent-encoding, logged as a warning', async () => {
    bot = await startBot();
    const errors = vi.spyOn(bot.runtime.logger, 'error');
    const warnings = vi.spyOn(bot.runtime.logger, 'warn');

    const res = await send(`${bot.url}/api/incidents/%ZZ1`);

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_url', message: expect.stringContaining('percent') } });
    expect(res.headers.get('www-authenticate')).toBeNull();
    expect(errors).not.toHaveBeenCalled();
    expect(warnings).toHaveBeenCalledWith(expect.anything(), expect.stringContaining('percent-encoding'));
  });

  it('labels request metrics by route template, with one "unmatched" series for every other path', async () => {
    bot = await startBot();
    for (let i = 0; i < 5; i++) {
      await send(`${bot.url}/api/incidents/%ZZ${i}`);
      await send(`${bot.url}/api/incidents/incident-${i}`);
      await send(`${bot.url}/no/such/path/${i}`);
    }

    const text = (await send(`${bot.url}/metrics`)).body as string;
    const routes = new Set(
      [...text.matchAll(/^mdr_http_requests_total\{route="([^"]*)"/gm)].map((m) => m[1] as string),
    );

    expect([...routes].sort()).toEqual(['/api/incidents/:id', 'unmatched']);
    expect(text).toMatch(/^mdr_http_requests_total\{route="unmatched",status="400"\} 5$/m);
    expect(text).toMatch(/^mdr_http_requests_total\{route="unmatched",status="404"\} 5$/m);
    expect(text).toMatch(/^mdr_http_requests_total\{route="\/api\/incidents\/:id",status="401"\} 5$/m);
  });
});

describe('https base URLs', () => {
  const HTTP_URLS = {
    SLACK_API_URL: 'http://slack.example/api/',
    DEFENDER_API_URL: 'http://mde.example',
    GRAPH_API_URL: 'http://graph.example',
    AZURE_AUTHORITY_HOST: 'http://login.example',
  };

  it('refuses http:// for each token-carrying base URL outside local mode, unless ALLOW_INSECURE_URLS=true, which start-up names', () => {
    let problems: string[] = [];
    try {
      loadConfig({ ...SLACK, DEFENDER_TENANT_ID: TENANT, ...HTTP_URLS });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems).toHaveLength(4);
    for (const name of Object.keys(HTTP_URLS)) {
      expect(problems).toContainEqual(
        expect.stringMatching(new RegExp(`^${name}: must be https://.*ALLOW_INSECURE_URLS=true`)),
      );
    }

    expect(loadConfig({ ...HTTP_URLS }).localMode).toBe(true);

    const config = loadConfig({
      ...SLACK,
      DEFENDER_TENANT_ID: TENANT,
      ...HTTP_URLS,
      ALLOW_INSECURE_URLS: 'true',
    });
    const logger = createLogger('silent');
    const runtime = assembleRuntime(config, logger, { queue: new LocalQueue({ logger }) });
    expect(describeRuntime(runtime)).toContainEqual(
      expect.stringMatching(
        /^ALLOW_INSECURE_URLS=true: .*in use: SLACK_API_URL, DEFENDER_API_URL, GRAPH_API_URL, AZURE_AUTHORITY_HOST$/,
      ),
    );
  });
});

describe('ingested incidents', () => {
  it('keeps portal links on the Defender portal or on PUBLIC_URL, and links the incident in the portal otherwise', async () => {
    const store = new MemoryStore();
    bot = await startBot({ env: { PUBLIC_URL: 'https://mdr-bot.contoso.com' }, parts: { store } });
    const ingest = async (id: string, incidentWebUrl: string) => {
      const body = sampleIngestBody(shippedSample());
      body.incident.id = id;
      body.incident.incidentWebUrl = incidentWebUrl;
      const res = await send(`${bot?.url}/api/incidents`, { token: INGEST_TOKEN, body });
      expect(res.status).toBe(201);
      return res.body.portalUrl as string;
    };

    const phishing = await ingest('1', 'https://security-microsoft.evil.example/incidents/1');
    const lookalike = await ingest('2', 'https://security.microsoft.com.evil.example/incidents/2');
    const clear = await ingest('3', 'http://security.microsoft.com/incidents/3');
    const portal = await ingest('4', 'https://security.microsoft.com/incidents/4?tid=x');
    const gcchigh = await ingest('5', 'https://security.microsoft.us/incidents/5');
    const ours = await ingest('6', 'https://mdr-bot.contoso.com/incidents/6');

    expect([phishing, lookalike, clear]).toEqual([
      'https://security.microsoft.com/incidents/1',
      'https://security.microsoft.com/incidents/2',
      'https://security.microsoft.com/incidents/3',
    ]);
    expect([portal, gcchigh, ours]).toEqual([
      'https://security.microsoft.com/incidents/4?tid=x',
      'https://security.microsoft.us/incidents/5',
      'https://mdr-bot.contoso.com/incidents/6',
    ]);
    const state = await store.getIncident('1');
    expect(state && buildIncidentView(state).portalUrl).toBe('https://security.microsoft.com/incidents/1');
    expect((await send(`${bot.url}/api/incidents/1`, { token: INGEST_TOKEN })).body.portalUrl).toBe(
      'https://security.microsoft.com/incidents/1',
    );
  });

  it('refuses with 422 an incident of another tenant than DEFENDER_TENANT_ID, audits it and stores nothing', async () => {
    const store = new MemoryStore();
    bot = await startBot({ env: { DEFENDER_TENANT_ID: TENANT.toUpperCase() }, parts: { store } });
    const foreign = sampleIngestBody(shippedSample());
    foreign.incident.tenantId = '00000000-0000-0000-0000-00000000beef';

    const refused = await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body: foreign });
    const accepted = await send(`${bot.url}/api/incidents`, {
      token: INGEST_TOKEN,
      body: sampleIngestBody(shippedSample()),
    });

    expect(refused.status).toBe(422);
    expect(refused.body).toEqual({
      error: { code: 'wrong_tenant', message: expect.stringContaining('tenant') },
    });
    expect(accepted.status).toBe(201);
    expect(await store.listAudit()).toContainEqual(
      expect.objectContaining({
        actor: 'api:ingest',
        event: 'ingest',
        outcome: 'refused',
        detail: expect.stringContaining(
          'wrong_tenant: incident 48213 of tenant 00000000-0000-0000-0000-00000000beef',
        ),
      }),
    );
    const audit = await store.listAudit('48213');
    expect(audit.filter((e) => e.outcome === 'refused')).toEqual([]);
    expect(audit[0]).toMatchObject({ event: 'ingest', detail: 'incident received' });
  });
});
