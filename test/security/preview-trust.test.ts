import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { previewRouter } from '../../bot/preview/router.js';
import { type BotServer, INGEST_TOKEN, send, startBot } from '../support/bot-server.js';
import { sampleIngestBody } from '../support/incident-factory.js';

let bot: BotServer;
let port: string;

beforeEach(async () => {
  bot = await startBot({ mounts: (runtime) => ({ preview: previewRouter(runtime) }) });
  port = new URL(bot.url).port;
});
afterEach(async () => {
  await bot.close();
});

/** A request with exactly these headers (fetch will not send a Host or a Sec-Fetch-Site of our choosing). */
function raw(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      new URL(path, bot.url),
      {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const incidents = async () => (await send(`${bot.url}/preview/api/state`)).body.incidents as unknown[];

describe('the preview page (local mode)', () => {
  it('refuses requests through a proxy or tunnel, or for another Host (DNS rebinding), and audits them', async () => {
    const refused = [
      raw('GET', '/', { host: 'attacker.example' }),
      raw('GET', '/preview/api/state', { host: `rebind.attacker.example:${port}` }),
      raw('GET', '/preview/api/state', { 'x-forwarded-for': '203.0.113.7' }),
      raw('GET', '/', { forwarded: 'for=203.0.113.7' }),
      raw('POST', '/preview/api/sample', { 'x-real-ip': '203.0.113.7' }),
      raw('POST', '/preview/api/sample', { 'x-forwarded-proto': 'https' }),
    ];
    const results = await Promise.all(refused);
    expect(results.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 403]);
    expect(results[0]!.text).toContain('this machine only');
    expect(await incidents()).toEqual([]);
    const audit = await bot.runtime.store.listAudit();
    expect(audit).toHaveLength(refused.length);
    expect(audit.every((a) => a.outcome === 'refused' && a.platform === 'preview')).toBe(true);

    expect((await raw('GET', '/', { host: `localhost:${port}` })).status).toBe(200);
    expect((await raw('GET', '/preview/api/state', { host: `[::1]:${port}` })).status).toBe(200);
  });

  it('refuses cross-site requests to its state-changing routes and changes nothing', async () => {
    const sample = await raw('POST', '/preview/api/sample', {
      origin: `http://127.0.0.1:${port}`,
      'sec-fetch-site': 'same-origin',
    });
    expect(sample.status).toBe(201);
    const { id } = JSON.parse(sample.text) as { id: string };

    const approve = { verb: 'approve', incidentId: id, actionId: 'act-1', as: 'slack:U0EXPERT1' };
    const crossSite = [
      raw('POST', '/preview/api/sample', {
        origin: 'http://attacker.example',
        'sec-fetch-site': 'cross-site',
      }),
      raw('POST', '/preview/api/sample', { 'sec-fetch-site': 'same-site' }),
      raw('POST', '/preview/api/sample', { origin: 'null' }),
      raw('POST', '/preview/api/action', { origin: 'http://attacker.example' }, approve),
      raw('POST', '/preview/api/action', { 'sec-fetch-site': 'cross-site' }, approve),
    ];
    const results = await Promise.all(crossSite);
    expect(results.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    expect(results[0]!.text).toContain('another site');
    expect(await incidents()).toHaveLength(1);
    expect((await bot.runtime.store.getAction(id, 'act-1'))?.state).toBe('proposed');
    expect((await bot.runtime.store.listAudit()).filter((a) => a.outcome === 'refused')).toHaveLength(
      crossSite.length,
    );

    // The page itself, and a script on this machine (npm run demo:incident) that sends no Origin.
    const own = await raw('POST', '/preview/api/action', { origin: `http://127.0.0.1:${port}` }, approve);
    expect(JSON.parse(own.text)).toMatchObject({ ok: true });
    expect((await send(`${bot.url}/preview/api/sample`, { method: 'POST' })).status).toBe(201);
  });

  it('takes the scan an expert chose (Quick or Full only) and refuses any other value', async () => {
    const body = sampleIngestBody({
      actions: [
        {
          id: 'act-7',
          type: 'runAntivirusScan',
          status: 'proposed',
          target: { deviceId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1' },
        },
        {
          id: 'act-8',
          type: 'isolateDevice',
          status: 'proposed',
          target: { deviceId: '4a1f9c2e7b3d8e06c5a2f1b9d7e3c8a0b6f2d4e1' },
        },
      ],
    });
    expect((await send(`${bot.url}/api/incidents`, { token: INGEST_TOKEN, body })).status).toBe(201);
    const act = (actionId: string, scanType: string) =>
      raw(
        'POST',
        '/preview/api/action',
        {},
        {
          verb: 'approve',
          incidentId: '48213',
          actionId,
          as: 'slack:U0EXPERT1',
          scanType,
        },
      );

    const forged = await act('act-7', 'Boot');
    expect(forged.status).toBe(400);
    expect(forged.text).toContain('scanType');
    const notAScan = JSON.parse((await act('act-8', 'Full')).text);
    expect(notAScan).toMatchObject({ ok: false, code: 'invalid_choice' });
    expect((await bot.runtime.store.getAction('48213', 'act-8'))?.state).toBe('proposed');

    expect(JSON.parse((await act('act-7', 'Full')).text)).toMatchObject({ ok: true });
    expect(await bot.runtime.store.getAction('48213', 'act-7')).toMatchObject({ scanType: 'Full' });
  });
});
