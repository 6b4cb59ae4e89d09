import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const manifest = parse(
  readFileSync(new URL('../../../manifest/slack/manifest.yaml', import.meta.url), 'utf8'),
) as Record<string, any>;

describe('Slack app manifest', () => {
  it('sends the /mdr command and every click to the one fixed route', () => {
    const [command, ...others] = manifest.features.slash_commands;
    expect(others).toEqual([]);
    expect(command).toMatchObject({ command: '/mdr', url: 'https://YOUR-BOT-HOST/slack/events' });
    expect(command.description.length).toBeGreaterThan(0);
    expect(command.usage_hint).toContain('pending');
    expect(manifest.settings.interactivity).toEqual({
      is_enabled: true,
      request_url: 'https://YOUR-BOT-HOST/slack/events',
    });
  });

  it('asks for exactly the scopes the bot uses, within Slack field limits', () => {
    expect(manifest.oauth_config.scopes.bot).toEqual(['chat:write', 'chat:write.public', 'commands']);
    expect(manifest.features.bot_user.display_name.length).toBeLessThanOrEqual(80);
    expect(manifest.display_information.name.length).toBeLessThanOrEqual(35);
    expect(manifest.display_information.description.length).toBeLessThanOrEqual(140);
    expect(manifest.display_information.long_description.length).toBeGreaterThanOrEqual(174);
    expect(manifest.features.slash_commands[0].command.length).toBeLessThanOrEqual(32);
  });
});
