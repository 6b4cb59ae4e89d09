import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../bot/config.js';
import { problemsOf, writePolicyFile } from '../../support/config.js';

const policyFile = (text: string) => writePolicyFile(text).path;

describe('loadConfig', () => {
  it('runs the embedded default with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3978,
      localMode: true,
      dryRun: true,
      keyPrefix: 'mdr:',
      teams: { authEnabled: false },
      execution: { followSeconds: 5, actionsPerMinute: 100, actionsPerHour: 1_500 },
    });
    expect(config.redis).toBeUndefined();
    expect(config.slack).toBeUndefined();
    expect(config.policy.roles.experts.length).toBeGreaterThan(0);
  });

  it('refuses each bad value, naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'eighty' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL'],
      [{ REDIS_KEY_PREFIX: 'has space' }, 'REDIS_KEY_PREFIX'],
      [{ SLACK_BOT_TOKEN: 'xoxb-123' }, 'SLACK_SIGNING_SECRET'],
      [{ SLACK_SIGNING_SECRET: 'abcdef0123456789' }, 'SLACK_BOT_TOKEN'],
      [{ SLACK_BOT_TOKEN: 'xoxp-user-token', SLACK_SIGNING_SECRET: 'abcdef0123456789' }, 'SLACK_BOT_TOKEN'],
      [{ SLACK_API_URL: 'not a url' }, 'SLACK_API_URL'],
      [{ SLACK_BOT_TOKEN: 'xoxb-123', SLACK_APP_TOKEN: 'xoxb-not-an-app-token' }, 'SLACK_APP_TOKEN'],
      [{ SLACK_APP_TOKEN: 'xapp-1-A0-1-abc' }, 'SLACK_BOT_TOKEN'],
      [{ MicrosoftAppId: '00000000-0000-0000-0000-000000000001' }, 'MicrosoftAppPassword'],
      [
        { MicrosoftAppType: 'SingleTenant', MicrosoftAppId: 'x', MicrosoftAppPassword: 'y' },
        'MicrosoftAppTenantId',
      ],
      [{ MicrosoftAppType: 'Personal' }, 'MicrosoftAppType'],
      [{ MicrosoftAppTenantId: 'contoso.onmicrosoft.com' }, 'MicrosoftAppTenantId'],
      [{ TEAMS_SERVICE_URL_HOSTS: 'smba.example, https://x.example/' }, 'TEAMS_SERVICE_URL_HOSTS'],
      [{ DEFENDER_CLIENT_SECRET: 's3cret' }, 'DEFENDER_TENANT_ID'],
      [{ AZURE_AUTHORITY_HOST: 'http://login.example', DEFENDER_TENANT_ID: 't' }, 'AZURE_AUTHORITY_HOST'],
      [{ AZURE_AUTHORITY_HOST: 'ftp://login.example' }, 'AZURE_AUTHORITY_HOST'],
      [{ DEFENDER_API_URL: 'ftp://x' }, 'DEFENDER_API_URL'],
      [{ GRAPH_API_URL: 'nope' }, 'GRAPH_API_URL'],
      [{ DRY_RUN: 'maybe' }, 'DRY_RUN'],
      [{ GRAPH_POLL_SECONDS: '5' }, 'GRAPH_POLL_SECONDS'],
      [{ DEFENDER_FOLLOW_SECONDS: '0' }, 'DEFENDER_FOLLOW_SECONDS'],
      [{ DEFENDER_ACTIONS_PER_MINUTE: '0' }, 'DEFENDER_ACTIONS_PER_MINUTE'],
      [{ DEFENDER_ACTIONS_PER_HOUR: 'lots' }, 'DEFENDER_ACTIONS_PER_HOUR'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ INGEST_TOKEN: 'short' }, 'INGEST_TOKEN'],
      [{ ADMIN_TOKEN: 'short' }, 'ADMIN_TOKEN'],
      [{ POLICY_FILE: '/nonexistent/policy.yaml' }, 'POLICY_FILE'],
    ];
    for (const [env, variable] of cases) {
      const problems = problemsOf(env);
      expect(problems.join('\n'), JSON.stringify(env)).toMatch(new RegExp(`^${variable}:`, 'm'));
    }
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({ PORT: 'x', LOG_LEVEL: 'loud', DRY_RUN: 'maybe' });
    expect(problems).toHaveLength(3);
    expect(String(new ConfigError(problems).message)).toMatch(/Invalid configuration:\n {2}- /);
  });

  it('reports a bad value together with the problems across variables and in the policy file', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      SLACK_BOT_TOKEN: 'xoxb-1-2-3',
      DEFENDER_CLIENT_SECRET: 'test-secret-value',
      GRAPH_API_URL: 'http://graph.example',
      POLICY_FILE: '/nonexistent/policy.yaml',
    });
    expect(problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual([
      'PORT',
      'SLACK_SIGNING_SECRET',
      'DEFENDER_TENANT_ID',
      'DEFENDER_CLIENT_ID',
      'GRAPH_API_URL',
      'POLICY_FILE',
    ]);
    expect(problems[0]).toBe('PORT: must be a port number from 0 to 65535 (default 3978)');
    expect(problems[5]).toBe('POLICY_FILE: cannot read /nonexistent/policy.yaml (ENOENT)');
  });

  it('says what is wrong in its own words, never in the validator’s', () => {
    const problems = problemsOf({
      PORT: '3978.5',
      GRAPH_POLL_SECONDS: 'often',
      DEFENDER_FOLLOW_SECONDS: 'soon',
      DEFENDER_ACTIONS_PER_MINUTE: 'many',
      DEFENDER_ACTIONS_PER_HOUR: '-1',
      LOG_LEVEL: 'loud',
    });
    expect(problems).toHaveLength(6);
    for (const problem of problems) {
      expect(problem).toMatch(/^[A-Z_]+: must be /);
      expect(problem).not.toMatch(/Invalid input|expected|received|NaN/i);
    }
  });

  it('says how to fix a half-configured Slack', () => {
    const [problem] = problemsOf({ SLACK_BOT_TOKEN: 'xoxb-1-2-3' });
    expect(problem).toContain('Signing Secret');
    expect(problem).toContain('set both or neither');
  });

  it('loads a policy file and names the bad field of a broken one', () => {
    const good = policyFile(`
roles:
  experts: [slack:U0EXPERT1, teams:6f2c0a4e-aad-object-id]
  admins: [slack:U0ADMIN1]
exclusions:
  devices:
    - id: 1e5bc9d7e413ddd7902c2932e418702b84d0cc07
    - name: dc01.contoso.com
    - group: Domain Controllers
    - tag: VIP
  users:
    - upn: ceo@contoso.com
    - group: Executives
channels:
  slack: C0SOC
  teams: "19:abc@thread.tacv2"
reminders:
  pendingTaskHours: 12
`);
    const config = loadConfig({ POLICY_FILE: good });
    expect(config.policy.exclusions.devices).toHaveLength(4);
    expect(config.policy.channels).toEqual({ slack: 'C0SOC', teams: '19:abc@thread.tacv2' });
    expect(config.policy.reminders.pendingTaskHours).toBe(12);

    const bad = policyFile('roles:\n  experts: [U0EXPERT1]\nexclusions:\n  devices:\n    - hostname: x\n');
    const problems = problemsOf({ POLICY_FILE: bad });
    expect(problems[0]).toMatch(/^POLICY_FILE: .*roles\.experts\[0\]: must be "slack:<user id>"/);
    expect(problems[0]).toContain('exclusions.devices[0]');
    expect(problemsOf({ POLICY_FILE: policyFile('roles: [unclosed') })[0]).toContain('not valid YAML');
  });

  it('keeps the Teams tenant and the extra serviceUrl hosts', () => {
    const config = loadConfig({
      MicrosoftAppId: '00000000-0000-0000-0000-000000000001',
      MicrosoftAppPassword: 'secret-value',
      MicrosoftAppTenantId: '7F3C2A10-5B1E-4C8D-9A6F-2E4B8D1C0A55',
      TEAMS_SERVICE_URL_HOSTS: ' smba.sovereign.example , *.Bots.Example ',
    });
    expect(config.teams).toMatchObject({
      authEnabled: true,
      tenantId: '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
      serviceUrlHosts: ['smba.sovereign.example', '*.bots.example'],
    });
    expect(config.localMode).toBe(false);
  });

  it('keeps Slack settings and trims the API URL', () => {
    const config = loadConfig({
      SLACK_BOT_TOKEN: 'xoxb-1-2-3',
      SLACK_SIGNING_SECRET: 'abcdef0123456789',
      SLACK_API_URL: 'http://127.0.0.1:9/api/',
      ALLOW_INSECURE_URLS: 'true',
    });
    expect(config.slack).toEqual({
      botToken: 'xoxb-1-2-3',
      signingSecret: 'abcdef0123456789',
      apiUrl: 'http://127.0.0.1:9/api/',
    });
    expect(config.localMode).toBe(false);
  });

  it('takes SLACK_APP_TOKEN for Socket Mode without a signing secret, and says what it needs', () => {
    const config = loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1-2-3', SLACK_APP_TOKEN: 'xapp-1-A0MDRBOT-1-abc' });
    expect(config.slack).toEqual({
      botToken: 'xoxb-1-2-3',
      appToken: 'xapp-1-A0MDRBOT-1-abc',
      apiUrl: 'https://slack.com/api/',
    });
    expect(config.localMode).toBe(false);
    expect(problemsOf({ SLACK_APP_TOKEN: 'xapp-1-A0MDRBOT-1-abc' })).toEqual([
      expect.stringMatching(/^SLACK_BOT_TOKEN: is required when SLACK_APP_TOKEN is set \(Slack app > OAuth/),
    ]);
    expect(problemsOf({ SLACK_BOT_TOKEN: 'xoxb-1-2-3', SLACK_APP_TOKEN: 'xoxp-user' })).toEqual([
      expect.stringMatching(
        /^SLACK_APP_TOKEN: must be an app-level token starting with xapp- .*connections:write/,
      ),
    ]);
    expect(problemsOf({ SLACK_BOT_TOKEN: 'xoxb-1-2-3' })).toEqual([
      expect.stringMatching(/^SLACK_SIGNING_SECRET: is required .*or set SLACK_APP_TOKEN to use Socket Mode/),
    ]);
  });

  it('takes MAIL_SENDER with the app registration that sends it, and refuses it otherwise', () => {
    const app = {
      DEFENDER_TENANT_ID: '7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a55',
      DEFENDER_CLIENT_ID: '3c9f0e21-7a4b-4d8e-b5c6-1f2a3b4c5d6e',
      DEFENDER_CLIENT_SECRET: 'test-secret-value',
    };
    expect(loadConfig({ ...app, MAIL_SENDER: 'MDR-Notifications@contoso.com' }).mailSender).toBe(
      'mdr-notifications@contoso.com',
    );
    expect(problemsOf({ ...app, MAIL_SENDER: 'not a mailbox' })[0]).toMatch(
      /^MAIL_SENDER: must be the address/,
    );
    expect(
      problemsOf({
        SLACK_BOT_TOKEN: 'xoxb-1-2-3',
        SLACK_SIGNING_SECRET: 'signing-secret-value',
        MAIL_SENDER: 'mdr@contoso.com',
      }),
    ).toEqual([expect.stringMatching(/^MAIL_SENDER: needs the app registration .*Mail\.Send/)]);
  });

  it('reads notifications.email from the policy and names a bad address', () => {
    const good = policyFile('notifications:\n  email: [soc@contoso.com, it-oncall@contoso.com]\n');
    expect(loadConfig({ POLICY_FILE: good }).policy.notifications).toEqual({
      email: ['soc@contoso.com', 'it-oncall@contoso.com'],
    });
    const bad = policyFile('notifications:\n  email: [soc-at-contoso]\n');
    expect(problemsOf({ POLICY_FILE: bad })[0]).toMatch(
      /notifications\.email\[0\]: must be an email address/,
    );
  });
});
