import { describe, expect, it } from 'vitest';
import { deliveryProblem, serviceUrlProblem, type TeamsTrust } from '../../../../bot/teams/trust.js';

const TENANT = '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55';
const auth: TeamsTrust = { authEnabled: true, localMode: false, tenantId: TENANT, serviceUrlHosts: [] };

describe('serviceUrlProblem with authentication on', () => {
  it.each([
    'https://smba.trafficmanager.net/amer/',
    'https://smba.trafficmanager.net/teams/',
    'https://europe.webchat.botframework.com/',
    'https://smba.infra.gcc.teams.microsoft.com/gcc/',
    'https://smba.infra.gov.teams.microsoft.us/',
    'https://smba.infra.dod.teams.microsoft.us/',
    'https://x.botframework.azure.us/',
  ])('accepts %s', (url) => {
    expect(serviceUrlProblem(url, auth)).toBeUndefined();
  });

  it.each([
    ['http://smba.trafficmanager.net/amer/', 'not https'],
    ['https://evilbotframework.com/', 'not a Bot Framework'],
    ['https://botframework.com.evil.example/', 'not a Bot Framework'],
    ['https://smba.trafficmanager.net.evil.example/', 'not a Bot Framework'],
    ['https://127.0.0.1:56150/', 'not a Bot Framework'],
    ['not a url', 'not a URL'],
    [undefined, 'no serviceUrl'],
  ])('refuses %s', (url, why) => {
    expect(serviceUrlProblem(url, auth)).toContain(why);
  });

  it('accepts hosts named in TEAMS_SERVICE_URL_HOSTS, exactly or under a *. domain', () => {
    const trust = { ...auth, serviceUrlHosts: ['smba.sovereign.example', '*.bots.example'] };
    expect(serviceUrlProblem('https://smba.sovereign.example/x/', trust)).toBeUndefined();
    expect(serviceUrlProblem('https://a.bots.example/', trust)).toBeUndefined();
    expect(serviceUrlProblem('https://bots.example/', trust)).toContain('TEAMS_SERVICE_URL_HOSTS');
  });
});

describe('deliveryProblem', () => {
  const reference = (tenantId?: string) => ({
    serviceUrl: 'https://smba.trafficmanager.net/amer/',
    conversation: tenantId ? { tenantId } : {},
  });

  it('delivers only to references of the allowed tenant', () => {
    expect(deliveryProblem(reference(TENANT.toUpperCase()), auth)).toBeUndefined();
    expect(deliveryProblem(reference('0badc0de-0000-4000-8000-00000000dead'), auth)).toContain(
      'another tenant',
    );
    expect(deliveryProblem(reference(), auth)).toContain('names no tenant');
  });

  it('in local mode delivers to the local connector of the Playground', () => {
    const local: TeamsTrust = { authEnabled: false, localMode: true, serviceUrlHosts: [] };
    expect(deliveryProblem({ serviceUrl: 'http://127.0.0.1:56150/_connector' }, local)).toBeUndefined();
  });
});
