/**
 * Swagger UI in real headless Chromium (Debian's chromium, driven by playwright-core)
 * against a listening server: every operation of the document renders, and the
 * content security policy does not block the UI. Without chromium this test FAILS:
 * install it with `apt-get install chromium` (`npm test` names it first when missing: scripts/preflight.mjs; .ci/run installs it).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { RedisServer } from '../helpers/redis-server.js';
import { TOKEN } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';

t.test('Swagger UI renders every operation', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} must exist (apt-get install chromium); this test does not skip`);
  if (!existsSync(CHROMIUM)) return;

  const redis = await RedisServer.start();
  const app = await buildApp({ redis: redis.url, adminToken: TOKEN });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  let browser: Browser | undefined;
  t.teardown(async () => {
    await browser?.close();
    await app.close();
    await redis.stop();
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  const offsite: string[] = [];
  page.on('request', (req) => {
    if (!req.url().startsWith(address) && !req.url().startsWith('data:')) offsite.push(req.url());
  });

  const res = await page.goto(`${address}/docs`, { waitUntil: 'load' });
  t.ok(res, 'got a response');
  t.match(res!.headers()['content-security-policy'] ?? '', /script-src/, 'served with a CSP');
  await page.waitForSelector('.opblock', { timeout: 30_000 });

  const rendered = await page.$$eval('.opblock', (blocks) =>
    blocks.map((b) => `${b.querySelector('.opblock-summary-method')?.textContent?.trim()} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`),
  );
  const doc = (await (await fetch(`${address}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const expected = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
  t.equal(expected.length, 8);
  t.same([...rendered].sort(), [...expected].sort(), 'every operation renders once');

  t.match(await page.textContent('.info .title'), /redis-dcp admin API/);
  t.ok(await page.$('.btn.authorize'), 'the Authorize button is there (bearer scheme)');

  // Expand DELETE and see its documented responses.
  await page.click('.opblock-delete .opblock-summary');
  await page.waitForSelector('.opblock-delete .responses-table', { timeout: 10_000 });
  const codes = await page.$$eval('.opblock-delete .responses-table .response-col_status', (cells) => cells.map((c) => c.textContent?.trim()));
  for (const code of ['204', '401', '403', '404', '409']) t.ok(codes.includes(code), `DELETE shows ${code}`);

  t.same(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e)), [], 'nothing blocked by the CSP');
  t.same(offsite, [], 'the UI loads nothing from other hosts');
});
