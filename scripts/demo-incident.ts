/**
 * Send the sample incident to a running bot: `npm run demo:incident`. In local mode it goes through the
 * preview channel (no token needed, loopback only); with INGEST_TOKEN set it uses the ingest API.
 * BOT_URL defaults to http://127.0.0.1:$PORT (3978).
 */
import { readFileSync } from 'node:fs';

const base = (process.env.BOT_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3978}`).replace(/\/+$/, '');
const token = process.env.INGEST_TOKEN;

async function main(): Promise<void> {
  const res = token
    ? await fetch(`${base}/api/incidents`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: readFileSync(new URL('../samples/incident-48213.json', import.meta.url), 'utf8'),
      })
    : await fetch(`${base}/preview/api/sample`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
  const body = (await res.json()) as { id?: string; error?: { message: string } };
  if (!res.ok) {
    console.error(`The bot answered ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    process.exit(1);
  }
  console.log(`Sent incident ${body.id} to ${base}${token ? '' : ` — open ${base}/ to see its cards`}`);
}

main().catch((error: unknown) => {
  console.error(`Could not reach the bot at ${base} (${(error as Error).message}). Start it with npm start.`);
  process.exit(1);
});
