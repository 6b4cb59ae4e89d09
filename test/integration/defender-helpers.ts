import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TokenCredential } from '@azure/identity';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { createAzureCredential } from '../../adapters/azure-credential.js';
import type { ActionType } from '../../core/actions.js';
import type { ActionRecord, ActionTarget, IncidentRecord } from '../../core/model.js';
import type { SubmitContext } from '../../core/ports.js';
import { type TestRedis, useTestRedis } from '../support/redis.js';

/** Test servers for the login authority, Defender and Graph; the API URLs carry a path prefix. */
export const LOGIN = 'https://login.test.local';
export const MDE_ORIGIN = 'https://mde.test.local';
export const MDE_URL = `${MDE_ORIGIN}/prefix`;
export const GRAPH_ORIGIN = 'https://graph.test.local';
export const GRAPH_URL = `${GRAPH_ORIGIN}/msgraph`;
export const TENANT = '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55';
export const CLIENT_ID = '3c9f0e21-7a4b-4d8e-b5c6-1f2a3b4c5d6e';
/** The tokens the nocked login issues, one per scope. */
export const MDE_TOKEN = 'token-for-mde';
export const GRAPH_TOKEN = 'token-for-graph';

/** Asset ids used across the Defender tests. */
export const IDS = {
  incidentId: '48213',
  machineId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1',
  machineName: 'fin-wks-0142.corp.contoso.com',
  serverId: '9e0d3b7c1a5f2e48d6c9b0a3f7e1d2c5b8a4f6e9',
  server: 'fin-app-07.corp.contoso.com',
  machineActionId: 'b7e41c92-3f05-4d6a-9a18-5c2e7d0f8a31',
  userId: '5d9a0c3e-8f1b-4a7d-b2e6-9c4f1a8d3e70',
  upn: 'alex.vance@contoso.com',
  bea: 'bea.ortiz@contoso.com',
  networkMessageId: '0c8e4a2f-6b1d-4f3e-9a70-08dd62d1c4b5',
  sha1: '2d6e8c1b9f4a7e3d5c0b8a6f1e9d2c7b4a3f5e8d',
  expert: 'slack:U0EXPERT1',
} as const;

const FIXTURES = fileURLToPath(new URL('../fixtures/defender/', import.meta.url));

/** A fresh copy of `test/fixtures/defender/<name>.json`, fields overridden. */
export function fixture<T = Record<string, unknown>>(
  name: string,
  overrides: Record<string, unknown> = {},
): T {
  const data = JSON.parse(readFileSync(`${FIXTURES}${name}.json`, 'utf8')) as Record<string, unknown>;
  return { ...data, ...overrides } as T;
}

/** What the nocked token endpoint received (form fields), newest last. */
/**
 * Defender answering the batched status query of submitted actions (`$filter=id in ('a','b')`) on
 * `defender` with `actionOf(id)` for every id asked.
 */
export function answerStatusQuery(defender: nock.Scope, actionOf: (id: string) => unknown): nock.Scope {
  return defender
    .get('/prefix/api/machineactions')
    .query((q) => String(q.$filter).startsWith('id in ('))
    .reply((uri) => {
      const filter = new URL(uri, MDE_ORIGIN).searchParams.get('$filter') ?? '';
      const ids = [...filter.matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
      return [200, { value: ids.map(actionOf) }];
    });
}

export const tokenRequests: URLSearchParams[] = [];

/**
 * Nock the authority as @azure/identity 4.13.1 (MSAL node 5) calls it with instance discovery off:
 * `GET /{tenant}/v2.0/.well-known/openid-configuration`, then the client-credentials form posted to the
 * token endpoint it names. The token depends on the scope asked for; `refusal` answers every token request.
 */
export function nockLogin(refusal?: { status: number; body: Record<string, unknown> }): void {
  tokenRequests.length = 0;
  nock(LOGIN)
    .persist()
    .get(`/${TENANT}/v2.0/.well-known/openid-configuration`)
    .reply(200, {
      token_endpoint: `${LOGIN}/${TENANT}/oauth2/v2.0/token`,
      issuer: `${LOGIN}/${TENANT}/v2.0`,
      authorization_endpoint: `${LOGIN}/${TENANT}/oauth2/v2.0/authorize`,
      jwks_uri: `${LOGIN}/${TENANT}/discovery/v2.0/keys`,
      end_session_endpoint: `${LOGIN}/${TENANT}/oauth2/v2.0/logout`,
    })
    .post(`/${TENANT}/oauth2/v2.0/token`)
    .query(true)
    .reply((_uri, body) => {
      if (refusal) return [refusal.status, refusal.body];
      const form = new URLSearchParams(String(body));
      tokenRequests.push(form);
      const scope = form.get('scope') ?? '';
      const token = scope.startsWith(MDE_ORIGIN)
        ? MDE_TOKEN
        : scope.startsWith(GRAPH_ORIGIN)
          ? GRAPH_TOKEN
          : 'x';
      return [200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token }];
    });
}

/** A real client-secret credential against the nocked authority (a fresh token cache each time). */
export function testCredential(): TokenCredential {
  return createAzureCredential({
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: 'test-secret-value',
    authorityHost: LOGIN,
  });
}

/** A sleep that waits for nothing and records each wait; `now()` moves with it. */
export function fakeTime(start = Date.parse('2025-03-14T09:10:00Z')) {
  let clock = start;
  const waits: number[] = [];
  return {
    waits,
    now: () => clock,
    sleep: async (ms: number) => {
      waits.push(ms);
      clock += ms;
    },
  };
}

/** The sample incident as core keeps it (evidence as seen at ingest). */
export function incidentRecord(overrides: Partial<IncidentRecord> = {}): IncidentRecord {
  return {
    id: IDS.incidentId,
    title: 'Multi-stage incident involving initial access and command and control',
    severity: 'high',
    status: 'active',
    portalUrl: `https://security.microsoft.com/incidents/${IDS.incidentId}`,
    summary: 'Phishing attachment started PowerShell that beaconed to a known C2.',
    createdAt: '2025-03-14T08:52:00.000Z',
    updatedAt: '2025-03-14T09:04:00.000Z',
    receivedAt: '2025-03-14T09:05:00.000Z',
    devices: [
      { id: IDS.machineId, dnsName: IDS.machineName, group: 'Finance Workstations', tags: [] },
      { id: IDS.serverId, dnsName: IDS.server, group: 'Finance Servers', tags: [] },
    ],
    users: [{ id: IDS.userId, upn: IDS.upn, displayName: 'Alex Vance' }],
    files: [{ sha1: IDS.sha1, name: 'Invoice_0314.exe', deviceId: IDS.machineId }],
    messages: [{ networkMessageId: IDS.networkMessageId, recipient: IDS.bea }],
    ...overrides,
  };
}

/** An action in the `executing` state, as the core hands it to the executor. */
export function executingAction(
  type: ActionType,
  target: ActionTarget,
  overrides: Partial<ActionRecord> = {},
): ActionRecord {
  return {
    incidentId: IDS.incidentId,
    id: 'act-1',
    type,
    target,
    state: 'executing',
    excludedBy: null,
    decidedBy: IDS.expert,
    decidedAt: '2025-03-14T09:09:00.000Z',
    createdAt: '2025-03-14T09:05:00.000Z',
    updatedAt: '2025-03-14T09:09:30.000Z',
    progress: 'Starting',
    version: 3,
    ...overrides,
  };
}

/** What a run reported for one context: progress shown and remote ids recorded (filled by `carryOut`). */
export interface Recorded {
  progress: string[];
  checkpoints: string[];
  claims: number;
}

const recorded = new WeakMap<SubmitContext, Recorded>();

/** What was recorded for a context made by `fakeContext`. */
export function recordOf(context: SubmitContext): Recorded {
  const found = recorded.get(context);
  if (!found) throw new Error('not a context made by fakeContext');
  return found;
}

/**
 * A `SubmitContext` as the core gives it to the executor; `holds` answers `claim` (the run still holds
 * the action). `progress` and `checkpoints` are filled by `carryOut`.
 */
export function fakeContext(
  incident = incidentRecord(),
  options: { resume?: boolean; holds?: boolean; approvedBy?: string } = {},
) {
  const record: Recorded = { progress: [], checkpoints: [], claims: 0 };
  const context: SubmitContext = {
    incident,
    approvedBy: options.approvedBy ?? IDS.expert,
    resume: options.resume ?? false,
    claim: async () => {
      record.claims++;
      return options.holds ?? true;
    },
  };
  recorded.set(context, record);
  return {
    context,
    ...record,
    get claims() {
      return record.claims;
    },
  };
}

/**
 * The life of a test file run against a real Redis with Defender and Graph faked by nock: Redis for the
 * file, no network but loopback, the Entra login answered before each test, and after each test the
 * nock fakes cleared and what the test registered in `closers` closed (last first).
 */
export function useRedisAndDefender(file: string): {
  redis: () => TestRedis;
  closers: (() => Promise<unknown>)[];
} {
  let redis: TestRedis | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    redis = await useTestRedis(file);
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  });
  afterAll(async () => {
    nock.enableNetConnect();
    await redis?.cleanup();
  });
  beforeEach(() => {
    nockLogin();
  });
  afterEach(async () => {
    nock.cleanAll();
    for (const close of closers.splice(0).reverse()) await close();
  });
  return {
    redis: () => {
      if (!redis) throw new Error('Redis is not started yet: use it inside a test');
      return redis;
    },
    closers,
  };
}
