// Open an unsubscribe link in headless Chromium at phone width with
// JavaScript disabled, check the page, click the button, check the
// confirmation; screenshots of both pages go to OUT_DIR.
//
// node unsubscribe.mjs URL OUT_DIR

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node unsubscribe.mjs URL OUT_DIR');
  process.exit(2);
}

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'} - ${what}`);
  if (!ok) failures.push(what);
};

const profile = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  // A common phone: 390 CSS px wide.
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  // The pages must work without JavaScript.
  javaScriptEnabled: false,
});

try {
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));

  const first = await page.goto(url, { waitUntil: 'load' });
  check(first.status() === 200, `GET answers 200 (got ${first.status()})`);
  check((await page.locator('h1').textContent()) === 'Unsubscribe?', 'GET page asks before unsubscribing');
  const text = await page.locator('main').innerText();
  check(/The Herald Weekly/.test(text), 'page names the newsletter');
  check(/a\*\*\*@example\.org/.test(text), 'page shows the masked address');
  check(!/ana\.silva/.test(text), 'page does not show the full address');
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  check(fits, 'no horizontal scrolling at phone width');
  const button = page.getByRole('button', { name: 'Unsubscribe' });
  const box = await button.boundingBox();
  check(box !== null && box.height >= 44 && box.x >= 0 && box.x + box.width <= 390,
    `button is a comfortable tap target inside the screen (${JSON.stringify(box)})`);
  const styled = await button.evaluate((b) => getComputedStyle(b).borderRadius);
  check(styled === '10px', `stylesheet applied under the CSP (border-radius ${styled})`);
  await page.screenshot({ path: join(outDir, 'unsubscribe-page.png'), fullPage: true });

  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    button.click(),
  ]);
  await page.waitForLoadState('load');
  check(answer.status() === 200, `POST answers 200 (got ${answer.status()})`);
  check(answer.request().redirectedFrom() === null && !answer.headers()['location'], 'no redirect');
  check(!answer.headers()['set-cookie'], 'no Set-Cookie');
  check((await page.locator('h1').textContent()) === 'You are unsubscribed', 'confirmation page shown');
  check(page.url() === url, 'still on the same URL');
  check((await context.cookies()).length === 0, 'no cookies stored');
  check(consoleErrors.length === 0, `no console errors (${consoleErrors.join(' | ')})`);
  await page.screenshot({ path: join(outDir, 'unsubscribed-page.png'), fullPage: true });
} catch (e) {
  check(false, `browser run: ${e.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
