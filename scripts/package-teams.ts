import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import JSZip from 'jszip';

/**
 * Builds the Teams app package (`dist/teams-app.zip`: manifest.json, color.png, outline.png) from
 * manifest/teams/, filling `${{NAME}}` placeholders from the environment. Run: npm run package:teams
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the manifest template and icons live. */
export const MANIFEST_DIR = resolve(ROOT, 'manifest/teams');
/** Where `npm run package:teams` writes the package. */
export const DEFAULT_OUTPUT = resolve(ROOT, 'dist/teams-app.zip');

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Packaging stopped: the message says which setting to fix. */
export class PackageError extends Error {}

/** The manifest template with every `${{NAME}}` replaced from `env`; throws PackageError when one is missing. */
export function fillManifest(
  template: string,
  env: Record<string, string | undefined>,
): Record<string, unknown> {
  const appId = env.MicrosoftAppId?.trim();
  if (!appId) {
    throw new PackageError(
      'MicrosoftAppId is not set: set it to the Application (client) ID of the bot registration (Azure portal > Azure Bot > Configuration), e.g. MicrosoftAppId=... npm run package:teams',
    );
  }
  if (!GUID.test(appId))
    throw new PackageError(`MicrosoftAppId "${appId}" is not a GUID: copy the Application (client) ID`);
  const missing = new Set<string>();
  const filled = template.replace(/\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, name: string) => {
    const value = env[name]?.trim();
    if (!value) {
      missing.add(name);
      return '';
    }
    return JSON.stringify(value).slice(1, -1);
  });
  if (missing.size > 0)
    throw new PackageError(`not set: ${[...missing].join(', ')} (used in manifest/teams/manifest.json)`);
  return JSON.parse(filled) as Record<string, unknown>;
}

/** Write the app package to `output` and return the manifest it contains. */
export async function packageTeamsApp(
  env: Record<string, string | undefined>,
  output = DEFAULT_OUTPUT,
  dir = MANIFEST_DIR,
): Promise<Record<string, unknown>> {
  const manifest = fillManifest(readFileSync(resolve(dir, 'manifest.json'), 'utf8'), env);
  const icons = manifest.icons as { color: string; outline: string };
  const zip = new JSZip();
  const date = new Date('2026-01-01T00:00:00Z');
  zip.file('manifest.json', `${JSON.stringify(manifest, null, 2)}\n`, { date });
  for (const icon of [icons.color, icons.outline]) zip.file(icon, readFileSync(resolve(dir, icon)), { date });
  const bytes = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' });
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, bytes);
  return manifest;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  packageTeamsApp(process.env).then(
    () =>
      process.stdout.write(
        `wrote ${DEFAULT_OUTPUT}: upload it in Teams (Apps > Manage your apps > Upload an app)\n`,
      ),
    (error: unknown) => {
      process.stderr.write(`package:teams failed: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
