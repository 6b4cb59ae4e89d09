import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../bot/config.js';
import { problemsOf, writePolicyFile } from '../../support/config.js';

const SECRET = 'whsec-0123456789abcdef';
const REDIS = { REDIS_URL: 'redis://127.0.0.1:6379/0' };
// biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's own ${NAME} syntax
const SECRET_REF = '${ITSM_SECRET}';

function policyWith(url: string, secret = SECRET_REF, events = '[task.created, incident.resolved]') {
  return writePolicyFile(
    [
      'notifications:',
      '  webhooks:',
      `    - url: ${url}`,
      `      secret: ${secret}`,
      `      events: ${events}`,
    ].join('\n'),
  ).path;
}

describe('policy webhooks', () => {
  it('reads the secret from the environment variable the policy names', () => {
    const config = loadConfig({
      ...REDIS,
      POLICY_FILE: policyWith('https://itsm.contoso.com/hooks/mdr'),
      ITSM_SECRET: SECRET,
    });

    expect(config.webhooks).toEqual([
      {
        url: 'https://itsm.contoso.com/hooks/mdr',
        secret: SECRET,
        events: ['task.created', 'incident.resolved'],
      },
    ]);
    expect(JSON.stringify(config.policy)).not.toContain(SECRET);
  });

  it('stops start-up when the named variable is missing, naming it', () => {
    const problems = problemsOf({ ...REDIS, POLICY_FILE: policyWith('https://itsm.contoso.com/hooks/mdr') });

    expect(problems).toEqual([
      expect.stringMatching(
        /notifications\.webhooks\[0\]\.secret: the environment variable ITSM_SECRET is not set/,
      ),
    ]);
  });

  it('refuses a short secret without repeating it', () => {
    const problems = problemsOf({
      ...REDIS,
      POLICY_FILE: policyWith('https://itsm.contoso.com/h'),
      ITSM_SECRET: 'short-s3cret',
    });

    expect(problems).toEqual([expect.stringContaining('ITSM_SECRET is too short')]);
    expect(problems.join('\n')).not.toContain('short-s3cret');
  });

  it('refuses a secret written in the policy file instead of a variable', () => {
    const problems = problemsOf({
      POLICY_FILE: policyWith('https://itsm.contoso.com/h', 'literal-secret-0123456789'),
    });

    expect(problems).toEqual([expect.stringMatching(/webhooks\[0\]\.secret: must be \$\{VARIABLE_NAME\}/)]);
  });

  it('refuses an unknown event and a URL that is not http(s)', () => {
    const unknownEvent = problemsOf({
      POLICY_FILE: policyWith('https://itsm.contoso.com/h', SECRET_REF, '[task.created, task.deleted]'),
      ITSM_SECRET: SECRET,
    });
    const ftp = problemsOf({ POLICY_FILE: policyWith('ftp://itsm.contoso.com/h'), ITSM_SECRET: SECRET });

    expect(unknownEvent.join('\n')).toMatch(
      /webhooks\[0\]\.events\[1\]: must be one of task\.created, task\.done/,
    );
    expect(ftp.join('\n')).toMatch(/webhooks\[0\]\.url: must be an http\(s\) URL/);
  });

  it('refuses http:// outside local mode unless ALLOW_INSECURE_URLS=true, which names it at start', () => {
    const env = {
      ...REDIS,
      POLICY_FILE: policyWith('http://itsm.contoso.com/hooks/mdr'),
      ITSM_SECRET: SECRET,
    };

    expect(problemsOf(env)).toEqual([
      expect.stringMatching(
        /notifications\.webhooks\[0\]\.url: must be https:\/\/ outside local mode.*ALLOW_INSECURE_URLS=true/,
      ),
    ]);
    const allowed = loadConfig({ ...env, ALLOW_INSECURE_URLS: 'true' });
    expect(allowed.webhooks[0]?.url).toBe('http://itsm.contoso.com/hooks/mdr');
    expect(allowed.insecureUrls).toContain('notifications.webhooks[0].url');
    expect(loadConfig({ POLICY_FILE: env.POLICY_FILE, ITSM_SECRET: SECRET }).localMode).toBe(true);
  });
});
