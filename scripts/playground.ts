import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_POLICY } from '../bot/config.js';

/**
 * `npm run playground`: the bot in local mode on 127.0.0.1:3978 and the Microsoft 365 Agents Playground
 * (a local Teams-like client) on 127.0.0.1:56150 pointed at it. You play the demo expert; Ctrl+C stops both.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BOT_PORT = Number(process.env.PORT ?? 3978);
const PLAYGROUND_PORT = Number(process.env.PLAYGROUND_PORT ?? 56150);
/** Settings that would take the bot out of local mode. */
const NOT_LOCAL = /^(SLACK_|Microsoft|DEFENDER_|REDIS_|GRAPH_POLL|POLICY_FILE$)/;

const expert = DEMO_POLICY.roles.experts.find((id) => id.startsWith('teams:'))?.slice('teams:'.length);

/** The playground wants at least five other users: the customer's analysts. */
const CUSTOMERS: [string, string][] = [
  ['Casey', 'Customer'],
  ['Bea', 'Ortiz'],
  ['Alex', 'Vance'],
  ['Dana', 'Lee'],
  ['Robin', 'Kim'],
];

function playgroundConfig(): string {
  return `version: "0.1.1"
tenantId: 00000000-0000-0000-0000-000000000001
bot:
  id: 00000000-0000-0000-0000-000000000011
  name: MDR Bot
currentUser:
  id: user-id-expert
  name: Morgan (MDR expert)
  userPrincipleName: morgan@mdr.example
  aadObjectId: ${expert}
  givenName: Morgan
  surname: Expert
  email: morgan@mdr.example
users:
${CUSTOMERS.map(
  ([given, surname], i) => `  - id: user-id-${i + 1}
    name: ${given} ${surname} (customer)
    userPrincipleName: ${given.toLowerCase()}@contoso.com
    aadObjectId: 00000000-0000-0000-0000-0000000c000${i + 1}
    givenName: ${given}
    surname: ${surname}
    email: ${given.toLowerCase()}@contoso.com
`,
).join('')}personalChat:
  id: personal-chat-id
groupChat:
  id: group-chat-id
  name: SOC chat
team:
  id: team-id
  name: Contoso SOC
  aadGroupId: 00000000-0000-0000-0000-000000000031
  channels:
    - id: channel-soc-id
      name: SOC
`;
}

function main(): void {
  const work = mkdtempSync(join(tmpdir(), 'mdr-playground-'));
  const configPath = join(work, '.m365agentsplayground.yml');
  const logFile = join(work, 'playground.log');
  writeFileSync(configPath, playgroundConfig());
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!NOT_LOCAL.test(key)) env[key] = value;

  let path = env.PATH ?? '';
  if (process.platform === 'linux' && !env.DISPLAY && !env.WAYLAND_DISPLAY) {
    // The playground opens a browser with xdg-open and crashes where there is none.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'xdg-open'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, 'xdg-open'), 0o755);
    path = `${bin}${delimiter}${path}`;
  }

  const endpoint = `http://127.0.0.1:${BOT_PORT}/api/messages`;
  const children: ChildProcess[] = [];
  const stop = (code: number) => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(work, { force: true, recursive: true });
    process.exit(code);
  };

  const bot = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bot/main.ts')], {
    cwd: ROOT,
    env: { ...env, PATH: path, HOST: '127.0.0.1', PORT: String(BOT_PORT) },
    stdio: 'inherit',
  });
  children.push(bot);

  const cli = join(ROOT, 'node_modules/@microsoft/m365agentsplayground/cli.js');
  const args = [cli, '-e', endpoint, '-c', 'msteams', '-p', String(PLAYGROUND_PORT)];
  args.push('--service-url', `http://127.0.0.1:${PLAYGROUND_PORT}/_connector`, '--disable-telemetry');
  const playground = spawn(process.execPath, args, {
    cwd: work,
    env: {
      ...env,
      PATH: path,
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
      TEAMSAPPTESTER_BROWSER: 'none',
      M365_AGENTS_PLAYGROUND_CONFIG_PATH: configPath,
      M365_AGENTS_PLAYGROUND_LOGFILE: logFile,
      NODE_OPTIONS:
        `${env.NODE_OPTIONS ?? ''} --require ${join(ROOT, 'scripts/playground-loopback.cjs')}`.trim(),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(playground);
  playground.stdout?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    process.stdout.write(text.replace(/http:\/\/localhost:/g, 'http://127.0.0.1:'));
    const listening = /Listening on (\d+)/.exec(text);
    if (listening) {
      process.stdout.write(
        `\nAgents Playground: open http://127.0.0.1:${listening[1]} (you are the demo MDR expert).\n` +
          `Bot: ${endpoint}; preview page http://127.0.0.1:${BOT_PORT}/; send a sample incident with npm run demo:incident.\n` +
          'Incident cards go to team channels: open the team "Contoso SOC" in the playground first. Ctrl+C stops both.\n\n',
      );
    }
  });

  for (const child of children) {
    child.on('exit', (code) => {
      process.stderr.write(
        `${child === bot ? 'bot' : 'playground'} exited (${code ?? 'signal'}): stopping\n`,
      );
      if (child === playground && existsSync(logFile)) {
        const lines = readFileSync(logFile, 'utf8')
          .split('\n')
          .filter((l) => /^error/.test(l));
        if (lines.length > 0) process.stderr.write(`${lines.join('\n')}\n`);
      }
      stop(code ?? 1);
    });
  }
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
}

main();
