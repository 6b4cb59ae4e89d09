import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { previewRouter } from '../../bot/preview/router.js';
import { type BotServer, startBot } from '../support/bot-server.js';
import { launchChromium } from '../support/browser.js';

let bot: BotServer;
let browser: Browser;

beforeAll(async () => {
  bot = await startBot({ mounts: (runtime) => ({ preview: previewRouter(runtime) }) });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await bot?.close();
});

describe('the preview page in Chromium', () => {
  it('shows the sample incident on both platforms and an Approve click changes the action', async () => {
    const page = await browser.newPage();
    await page.route('**/*', (route) =>
      route.request().url().startsWith(bot.url) ? route.continue() : route.abort(),
    );
    await page.goto(`${bot.url}/`);
    await page.getByRole('button', { name: 'Send sample incident' }).click();

    const incident = page.locator('section.incident[data-incident-id="48213"]');
    await expect.poll(() => incident.count(), { timeout: 10_000 }).toBe(1);
    const teams = incident.locator('.pane.teams');
    const slack = incident.locator('.pane.slack');
    await expect.poll(() => teams.textContent()).toContain('Isolate device fin-wks-0142.corp.contoso.com');
    await expect.poll(() => slack.textContent()).toContain('Isolate device fin-wks-0142.corp.contoso.com');
    expect(await slack.textContent()).toContain('Finance-Servers');

    await page.selectOption('#as', 'slack:U0EXPERT1');
    const approveButtons = teams.getByRole('button', { name: 'Approve' });
    await expect.poll(() => approveButtons.count()).toBeGreaterThan(0);
    await approveButtons.first().click();

    await expect
      .poll(async () => (await bot.runtime.store.getAction('48213', 'act-1'))?.state, { timeout: 10_000 })
      .toBe('succeeded');
    await expect.poll(() => page.locator('#notice').textContent()).toContain('approve act-1');
    await expect.poll(() => teams.textContent(), { timeout: 10_000 }).toContain('(dry run)');
    await page.close();
  });

  it('refuses a customer on the page and changes nothing', async () => {
    const page = await browser.newPage();
    await page.goto(`${bot.url}/`);
    await page.selectOption('#as', 'preview:customer');
    const section = page.locator('section.incident[data-incident-id="48213"] .pane.slack');
    const reject = section.getByRole('button', { name: 'Reject' });
    await expect.poll(() => reject.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    const before = (await bot.runtime.store.getIncident('48213'))?.actions.map((a) => a.state);
    await reject.first().click();
    await expect.poll(() => page.locator('#notice').textContent()).toContain('only the MDR experts');
    expect((await bot.runtime.store.getIncident('48213'))?.actions.map((a) => a.state)).toEqual(before);
    await page.close();
  });

  it("asks why on the Slack card's Skip, as Slack's modal does, and skips the task with that reason", async () => {
    const page = await browser.newPage();
    await page.goto(`${bot.url}/`);
    await page.selectOption('#as', 'preview:customer');
    const skip = page.locator(
      'section.incident[data-incident-id="48213"] .pane.slack button[data-action-id="skip:act-5"]',
    );
    await expect.poll(() => skip.count(), { timeout: 10_000 }).toBe(1);
    const answers = [null, '   ', 'fin-app-07 is being rebuilt from a clean image'];
    const asked: string[] = [];
    page.on('dialog', async (dialog) => {
      asked.push(`${dialog.type()}: ${dialog.message()}`);
      const answer = answers.shift();
      if (answer === null || answer === undefined) await dialog.dismiss();
      else await dialog.accept(answer);
    });
    const state = async () => bot.runtime.store.getAction('48213', 'act-5');

    await skip.click();
    await expect.poll(() => asked.length).toBe(1);
    expect(asked[0]).toBe('prompt: Why is this task skipped?');
    await skip.click();
    await expect.poll(() => page.locator('#notice').textContent()).toContain('say why the task is skipped');
    expect((await state())?.state).toBe('customerPending');
    await skip.click();
    await expect.poll(async () => (await state())?.state, { timeout: 10_000 }).toBe('skippedByCustomer');
    expect(await state()).toMatchObject({
      skippedBy: 'preview:customer',
      skipReason: 'fin-app-07 is being rebuilt from a clean image',
    });
    await page.close();
  });
});
