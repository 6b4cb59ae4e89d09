import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const read = (name: string) =>
  parse(readFileSync(new URL(`../../../manifest/slack/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    any
  >;

const manifest = read('manifest.yaml');
const socketManifest = read('manifest.socket-mode.yaml');

/** Every key path in a manifest whose name says it is a URL Slack would send requests to. */
function requestUrls(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const here = path ? `${path}.${key}` : key;
    return [...(/url$/i.test(key) ? [here] : []), ...requestUrls(child, here)];
  });
}

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
    expect(manifest.settings.socket_mode_enabled).toBe(false);
  });

  it('asks for exactly the scopes the bot uses, within Slack field limits', () => {
    for (const m of [manifest, socketManifest]) {
      expect(m.oauth_config.scopes.bot).toEqual(['chat:write', 'chat:write.public', 'commands']);
      expect(m.features.bot_user.display_name.length).toBeLessThanOrEqual(80);
      expect(m.display_information.name.length).toBeLessThanOrEqual(35);
      expect(m.display_information.description.length).toBeLessThanOrEqual(140);
      expect(m.display_information.long_description.length).toBeGreaterThanOrEqual(174);
      expect(m.features.slash_commands[0].command.length).toBeLessThanOrEqual(32);
    }
  });
});

describe('Slack app manifest for Socket Mode', () => {
  it('turns Socket Mode on and names no request URL', () => {
    expect(socketManifest.settings.socket_mode_enabled).toBe(true);
    expect(requestUrls(socketManifest)).toEqual([]);
    expect(requestUrls(manifest)).toEqual([
      'features.slash_commands.0.url',
      'settings.interactivity.request_url',
    ]);
  });

  it('is the HTTP manifest in every other respect: the same /mdr command, interactivity, scopes and names', () => {
    const withoutTransport = (m: Record<string, any>) => {
      const copy = structuredClone(m);
      for (const command of copy.features.slash_commands) delete command.url;
      delete copy.settings.interactivity.request_url;
      delete copy.settings.socket_mode_enabled;
      return copy;
    };
    expect(withoutTransport(socketManifest)).toEqual(withoutTransport(manifest));
    expect(socketManifest.settings.interactivity).toEqual({ is_enabled: true });
    expect(socketManifest.features.slash_commands.map((c: { command: string }) => c.command)).toEqual([
      '/mdr',
    ]);
  });
});
