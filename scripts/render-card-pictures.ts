/**
 * Render the sample incident's cards as pictures for the README: docs/teams-card.png (the official
 * Adaptive Cards renderer with a Teams-like host config) and docs/slack-card.png (Block Kit drawn as HTML).
 * Needs Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium) or CHROMIUM_PATH.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { slackMessagePage } from '../bot/preview/slack-html.js';
import { teamsCardPage } from '../bot/preview/teams-card.js';
import { buildIncidentView } from '../cards/incident-view.js';
import { renderSlackMessage } from '../cards/slack/render.js';
import { renderTeamsCard } from '../cards/teams/render.js';
import { incidentState, SAMPLE_NOW } from '../test/support/incident-factory.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const state = incidentState({
  states: {
    'act-1': {
      state: 'succeeded',
      decidedBy: 'teams:6f2c0a4e-1b7d-4c2a-9e51-3d8f0b6a2c14',
      decidedByName: 'Morgan Lee',
      decidedAt: '2025-03-14T10:42:00.000Z',
      result: 'Defender: Succeeded (full isolation)',
    },
    'act-3': { state: 'customerPending', excludedBy: 'user group Executives' },
  },
});
const view = buildIncidentView(state, { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com' });
const acScript = await readFile(
  createRequire(import.meta.url).resolve('adaptivecards/dist/adaptivecards.min.js'),
  'utf8',
);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 }, deviceScaleFactor: 2 });
  await page.route('**/*', (route) =>
    route.request().url().startsWith('data:') ? route.continue() : route.abort(),
  );

  const card = renderTeamsCard(view, { viewer: 'shared' });
  await page.setContent(teamsCardPage(card, { scriptText: acScript, title: 'Teams card' }));
  await page.locator('#card .teams-card').screenshot({ path: join(root, 'docs/teams-card.png') });

  const message = renderSlackMessage(view);
  await page.setContent(slackMessagePage(message, { time: '11:30 AM', title: 'Slack message' }));
  await page.locator('.slack-msg').screenshot({ path: join(root, 'docs/slack-card.png') });
  console.log('wrote docs/teams-card.png and docs/slack-card.png');
} finally {
  await browser.close();
}
