import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readWebApiCall, type WebApiCall } from '../../test/support/slack.js';
import { DefenderObservations, fakeDefender } from './fake-defender.js';

/**
 * The outside world of the bot, faked by small HTTP servers on loopback: Slack's Web API (and the
 * response_urls), Defender for Endpoint, Microsoft Graph, the Entra token endpoint (HTTPS: the bot
 * refuses an http authority) and the Teams Bot Connector with the Bot Framework OpenID metadata (HTTPS
 * too: with authentication on, the bot talks to a connector only over https). Each records when it saw
 * what, by incident.
 */

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function serve(handler: Handler, tls?: { key: string; cert: string }): Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  };
  const server = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  server.keepAliveTimeout = 60_000;
  return server;
}

async function listen(server: Server, scheme: 'http' | 'https', port = 0): Promise<string> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** What the fakes saw, keyed by incident id; times are `performance.now()` of this process. */
export class Observations {
  slackPosts = new Map<string, number>();
  slackUpdates = new Map<string, number[]>();
  slackResponseUrlPosts = 0;
  slackCalls = new Map<string, number>();
  teamsPosts = new Map<string, number>();
  teamsUpdates = 0;
  teamsPostsByIncident = new Map<string, number>();
  defender = new DefenderObservations();
  graphCalls = 0;
  /** Client-credentials token requests by scope. */
  tokens = new Map<string, number>();
  /** Bot Framework OpenID metadata and signing-key reads (inbound token validation). */
  openIdReads = 0;
  unknown = new Map<string, number>();

  constructor(private readonly incidentPattern: RegExp) {}

  incidentIn(text: string): string | null {
    return this.incidentPattern.exec(text)?.[0] ?? null;
  }

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}

export interface FakeOptions {
  /** Defender completes a machine action this long after it was submitted. */
  defenderDelayMs: number;
  /** Enforce Defender's documented API limits (429 with Retry-After). */
  defenderLimits: boolean;
  /** The bot's Defender app (client) id: `requestor` of the actions it makes. */
  defenderClientId: string;
  /** Key and certificate (PEM) of the HTTPS servers (token endpoint, Bot Connector). */
  tls: { key: string; cert: string };
  /** Incident ids of this run, to attribute requests. */
  incidentPattern: RegExp;
  /** JWKS served by the fake Bot Framework OpenID metadata (the key inbound activities are signed with). */
  jwks: unknown;
  /** Port of the Bot Connector fake (the bot is told its serviceUrl before it starts); default: any. */
  connectorPort?: number;
}

export interface Fakes {
  seen: Observations;
  slackUrl: string;
  defenderUrl: string;
  graphUrl: string;
  loginUrl: string;
  connectorUrl: string;
  close(): Promise<void>;
}

export async function startFakes(options: FakeOptions): Promise<Fakes> {
  const seen = new Observations(options.incidentPattern);
  let ts = 1_700_000_000;

  const slack = serve((req, body, res) => {
    const now = performance.now();
    const path = req.url ?? '/';
    if (path.startsWith('/actions/') || path.startsWith('/commands/')) {
      seen.slackResponseUrlPosts += 1;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    const method = path.replace(/^\/api\//, '').split('?')[0] ?? '';
    seen.count(seen.slackCalls, method);
    if (method === 'chat.postMessage' || method === 'chat.update') {
      // Read as Slack reads it (JSON or form, by content type): a card Slack would refuse is counted.
      let call: WebApiCall;
      try {
        call = readWebApiCall(req.headers, body);
      } catch {
        seen.count(seen.unknown, `slack ${method} with a body Slack cannot read`);
        json(res, 200, { ok: false, error: 'invalid_arguments' });
        return;
      }
      if (call.refusal || !Array.isArray(call.args.blocks)) {
        seen.count(seen.unknown, `slack ${method} refused: ${call.refusal ?? 'invalid_blocks'}`);
        json(res, 200, { ok: false, error: call.refusal ?? 'invalid_blocks' });
        return;
      }
      const incidentId = seen.incidentIn(body);
      if (method === 'chat.postMessage') {
        if (incidentId && !seen.slackPosts.has(incidentId)) seen.slackPosts.set(incidentId, now);
        ts += 1;
        json(res, 200, { ok: true, channel: 'C0BENCH', ts: `${ts}.000100`, message: { ts: `${ts}.000100` } });
        return;
      }
      if (incidentId) seen.slackUpdates.set(incidentId, [...(seen.slackUpdates.get(incidentId) ?? []), now]);
      json(res, 200, { ok: true, channel: 'C0BENCH', ts: call.args.ts ?? `${ts}.000100` });
      return;
    }
    if (method === 'auth.test') {
      json(res, 200, { ok: true, team_id: 'T0CONTOSO', user_id: 'U0BOT', bot_id: 'B0MDRBOT' });
      return;
    }
    json(res, 200, { ok: true });
  });

  const defenderFake = fakeDefender(
    {
      delayMs: options.defenderDelayMs,
      limits: options.defenderLimits,
      requestor: options.defenderClientId,
      incidentIn: (text) => seen.incidentIn(text),
    },
    json,
  );
  seen.defender = defenderFake.seen;
  const defender = serve((req, body, res) => {
    if (defenderFake.handle(req, body, res)) return;
    const url = new URL(req.url ?? '/', 'http://x');
    seen.count(seen.unknown, `defender ${req.method} ${url.pathname}`);
    json(res, 404, { error: { code: 'NotFound', message: 'not faked' } });
  });

  const graph = serve((req, _body, res) => {
    seen.graphCalls += 1;
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (req.method === 'GET' && parts[1] === 'users' && parts[3] === 'transitiveMemberOf') {
      return json(res, 200, { value: [] });
    }
    if (req.method === 'GET' && parts[1] === 'users' && parts[2]) {
      const id = parts[2];
      return json(res, 200, {
        id,
        userPrincipalName: id.includes('@') ? id : `${id}@bench.contoso.com`,
        mail: null,
        proxyAddresses: [],
        onPremisesSyncEnabled: null,
      });
    }
    seen.count(seen.unknown, `graph ${req.method} ${url.pathname}`);
    if (req.method === 'GET') return json(res, 200, { value: [] });
    res.writeHead(204).end();
  });

  let loginOrigin = '';
  const login = serve((req, body, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const tenant = url.pathname.split('/').filter(Boolean)[0] ?? 'common';
    if (url.pathname.endsWith('/.well-known/openid-configuration')) {
      return json(res, 200, {
        token_endpoint: `${loginOrigin}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${loginOrigin}/${tenant}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${loginOrigin}/${tenant}/oauth2/v2.0/logout`,
        issuer: `${loginOrigin}/${tenant}/v2.0`,
        jwks_uri: `${loginOrigin}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'token'],
      });
    }
    if (req.method === 'POST' && url.pathname.endsWith('/oauth2/v2.0/token')) {
      const scope = new URLSearchParams(body).get('scope') ?? 'none';
      seen.count(seen.tokens, scope);
      return json(res, 200, {
        token_type: 'Bearer',
        expires_in: 3599,
        ext_expires_in: 3599,
        access_token: `bench-token-${randomUUID()}`,
      });
    }
    seen.count(seen.unknown, `login ${req.method} ${url.pathname}`);
    json(res, 404, { error: 'not_faked' });
  }, options.tls);

  let connectorOrigin = '';
  let activity = 0;
  const connector = serve((req, body, res) => {
    const now = performance.now();
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/openid/.well-known/openidconfiguration') {
      seen.openIdReads += 1;
      return json(res, 200, {
        issuer: 'https://api.botframework.com',
        authorization_endpoint: 'https://invalid.botframework.com',
        jwks_uri: `${connectorOrigin}/openid/keys`,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
      });
    }
    if (url.pathname === '/openid/keys') {
      seen.openIdReads += 1;
      return json(res, 200, options.jwks);
    }
    if (url.pathname.includes('/v3/conversations/')) {
      if (!/^Bearer \S+/.test(req.headers.authorization ?? ''))
        seen.count(seen.unknown, 'connector call without a token');
      if (req.method === 'PUT') {
        seen.teamsUpdates += 1;
        return json(res, 200, { id: url.pathname.split('/').pop() });
      }
      const incidentId = seen.incidentIn(body);
      if (incidentId && !url.pathname.includes('messageid')) {
        if (!seen.teamsPosts.has(incidentId)) seen.teamsPosts.set(incidentId, now);
        seen.count(seen.teamsPostsByIncident, incidentId);
      }
      activity += 1;
      return json(res, 201, { id: `bench-activity-${activity}` });
    }
    seen.count(seen.unknown, `connector ${req.method} ${url.pathname}`);
    json(res, 404, { error: { code: 'NotFound', message: 'not faked' } });
  }, options.tls);

  const servers = [slack, defender, graph, login, connector];
  const [slackUrl, defenderUrl, graphUrl, loginUrl, connectorUrl] = await Promise.all([
    listen(slack, 'http'),
    listen(defender, 'http'),
    listen(graph, 'http'),
    listen(login, 'https'),
    listen(connector, 'https', options.connectorPort),
  ]);
  loginOrigin = loginUrl!;
  connectorOrigin = connectorUrl!;
  return {
    seen,
    slackUrl: slackUrl!,
    defenderUrl: defenderUrl!,
    graphUrl: graphUrl!,
    loginUrl: loginUrl!,
    connectorUrl: connectorUrl!,
    async close() {
      for (const server of servers) server.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
