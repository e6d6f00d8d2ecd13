/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The operator dashboard (GET /, issue 14) in real headless Chromium (playwright-core, as
 * the Swagger UI test): with ADMIN_TOKEN_READS the page asks for the token; a wrong token
 * shows the 403 message; the token never appears in a URL; list, filter by prefix and
 * state, cursor pagination; a checkpoint's items; shallow and deep validation of a
 * corrupted checkpoint (deep finds the checksum mismatch); delete after a confirmation;
 * the memory view shows GET /usage's numbers; keyboard navigation and labels; no
 * horizontal overflow at 1280 and 390 px; nothing blocked by the CSP, nothing offsite.
 * Screenshots go to .tap/dashboard/ (test artifacts); UPDATE_DOCS_SCREENSHOT=1 also
 * writes docs/dashboard.png for the README.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { save } from '../../src/core/save.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp } from '../../src/server/app.js';
import { absent, assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';
import { floatTensor, TOKEN } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = '.tap/dashboard';

/** No part of the page is wider than the viewport. */
async function noHorizontalOverflow(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

t.test('the dashboard: token, list, filter, pages, validate, delete, memory', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} must exist (apt-get install chromium); this test does not skip`);
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(ARTIFACTS, { recursive: true });

  const server = await RedisServer.start();
  const redis = server.client();
  await redis.config('SET', 'maxmemory', String(256 * 2 ** 20));
  const app = await buildApp({ redis, adminToken: TOKEN, adminTokenReads: true });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  let browser: Browser | undefined;
  t.teardown(async () => {
    await browser?.close();
    await app.close();
    await redis.quit();
    await server.stop();
  });

  // Data: a run with steps and metrics, a corrupted checkpoint, a crashed save, 27 small ones (two pages).
  const weights = (n: number) => ({ model: { w: floatTensor(Array.from({ length: n }, (_, i) => i)), b: floatTensor([1, 2]) }, note: 'x' });
  for (const step of [100, 200, 300]) await save(weights(4096), { checkpointId: `run1/step-${step}`, storageWriter: new RedisStorageWriter({ redis, step, metrics: { loss: 1 / step } }) });
  await save(weights(1000), { checkpointId: 'run2/corrupt', storageWriter: new RedisStorageWriter({ redis }) });
  const [dataKey] = await redis.keys('dcp:data:run2/corrupt:*');
  await redis.setrange(dataKey!, 100, '\xff\xfe');
  class CrashingWriter extends RedisStorageWriter {
    override async writeData(...args: Parameters<RedisStorageWriter['writeData']>): ReturnType<RedisStorageWriter['writeData']> {
      await super.writeData(...args);
      throw new Error('simulated crash');
    }
  }
  await t.rejects(save(weights(10), { checkpointId: 'run3/crashed', storageWriter: new CrashingWriter({ redis }) }));
  for (let i = 0; i < 27; i++) await save({ x: floatTensor([i]) }, { checkpointId: `many/${String(i).padStart(2, '0')}`, storageWriter: new RedisStorageWriter({ redis }) });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  const requested: string[] = [];
  page.on('request', (req) => requested.push(req.url()));
  const rows = () => page.$$eval('#checkpoints tbody tr td.id', (cells) => cells.map((c) => c.textContent ?? ''));

  // Reads are protected: the page asks for the token.
  const res = await page.goto(`${address}/`, { waitUntil: 'load' });
  t.match(res!.headers()['content-security-policy'] ?? '', /script-src 'self'/, 'served under the CSP');
  await page.waitForSelector('#notice:not([hidden])');
  t.match(await page.textContent('#notice'), /401.*Enter the admin token/, 'the page asks for the token');

  // A wrong token: the 403 message.
  await page.fill('#token', 'not-the-admin-token-0123456789abcdef');
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction(() => /403/.test(document.getElementById('notice')?.textContent ?? ''));
  t.match(await page.textContent('#notice'), /403: The bearer token is not the admin token/);

  // The right one: the table.
  await page.click('#forget');
  await page.fill('#token', TOKEN);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#checkpoints tbody tr td.id a');
  t.equal(await page.inputValue('#token'), '', 'the field is cleared once the token is kept');
  t.equal((await rows()).length, 25, 'a first page of 25 (32 checkpoints)');
  t.match(await page.textContent('#token-state'), /token set/);

  // Filter by prefix and state; the run's step and metrics are shown.
  await page.fill('#filter-prefix', 'run1/');
  await page.selectOption('#filter-state', 'committed');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 3);
  t.same(await rows(), ['run1/step-300', 'run1/step-200', 'run1/step-100'], 'newest first');
  const first = await page.$$eval('#checkpoints tbody tr:first-child td', (cells) => cells.map((c) => c.textContent));
  t.match(first, ['run1/step-300', 'committed', '300', /loss=0\.00333/, '16.0 KiB', '16.0 KiB', '1', /s$/]);
  await page.fill('#filter-prefix', 'run');
  await page.selectOption('#filter-state', 'incomplete');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#checkpoints tbody td.id')?.textContent === 'run3/crashed');
  t.same(await rows(), ['run3/crashed']);

  // Cursor pagination.
  await page.fill('#filter-prefix', 'many/');
  await page.selectOption('#filter-state', '');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 25);
  t.equal((await rows())[0], 'many/26');
  await page.click('text=Next page');
  await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 2);
  t.same(await rows(), ['many/01', 'many/00'], 'the second page through nextCursor');
  t.ok(await page.isDisabled('text=Next page'), 'no page after the last');
  await page.click('text=Previous page');
  await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 25);

  // Labels, and keyboard only: Tab to a checkpoint link, Enter opens it.
  const unlabeled = await page.$$eval('input, select', (fields) => fields.filter((f) => (f as HTMLInputElement).labels?.length === 0).map((f) => f.id));
  t.same(unlabeled, [], 'every field has a label');
  await page.fill('#filter-prefix', 'run2/');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#checkpoints tbody td.id')?.textContent === 'run2/corrupt');
  await page.focus('#filter-prefix');
  let reached = false;
  for (let i = 0; i < 10 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.textContent === 'run2/corrupt');
  }
  t.ok(reached, 'the checkpoint link is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#items tbody tr');
  t.equal(await page.evaluate(() => document.activeElement?.tagName), 'H2', 'focus moves to the new view\'s heading');

  // The checkpoint page: items, validate, deep validate.
  t.equal(await page.textContent('main h2'), 'run2/corrupt');
  const items = await page.$$eval('#items tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  t.same(items, [['model.w', 'tensor', 'float32', '[1000]', '1'], ['model.b', 'tensor', 'float32', '[2]', '1'], ['note', 'bytes (json)', '—', '—', '—']]);
  await page.click('text=Validate');
  await page.waitForSelector('#report.ok');
  t.match(await page.textContent('#report'), /Validation: OK/, 'lengths are right, so shallow validation passes');
  await page.click('text=Deep validate');
  await page.waitForSelector('#report.bad');
  t.match(await page.textContent('#report'), /Deep validation: 1 problem\(s\)checksum_mismatch model\.w/, 'deep validation finds the corrupted bytes');
  await page.screenshot({ path: `${ARTIFACTS}/checkpoint-1280.png`, fullPage: true });
  t.ok(await noHorizontalOverflow(page), 'checkpoint page: no horizontal overflow at 1280 px');

  // Delete: cancel first, then confirm.
  await page.click('text=Delete…');
  await page.waitForSelector('dialog#confirm[open]');
  t.match(await page.textContent('#confirm-text'), /Delete "run2\/corrupt"/);
  await page.click('dialog#confirm button[value=cancel]');
  t.equal((await app.inject({ url: '/checkpoints/run2%2Fcorrupt', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 200, 'cancel keeps it');
  await page.click('text=Delete…');
  await page.click('dialog#confirm button[value=delete]');
  await page.waitForFunction(() => /Deleted run2\/corrupt/.test(document.getElementById('notice')?.textContent ?? ''));
  t.equal((await app.inject({ url: '/checkpoints/run2%2Fcorrupt', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 404, 'deleted');

  // Memory: the usage report's numbers.
  await page.click('nav >> text=Memory');
  await page.waitForSelector('.bars');
  const usage = (await app.inject({ url: '/usage?top=20', headers: { authorization: `Bearer ${TOKEN}` } })).json() as { runs: Array<{ prefix: string; checkpoints: number }>; committed: { checkpoints: number } };
  const memory = (await page.textContent('main')) ?? '';
  t.match(memory, /Redis used[\d.]+ [KM]iB of 256\.0 MiB \(\d/, 'used vs max memory');
  for (const run of usage.runs) t.match(memory, run.prefix, `run ${run.prefix} has a bar`);
  t.match(memory, new RegExp(`committed.*· ${usage.committed.checkpoints}`), 'committed count as /usage reports');
  await page.screenshot({ path: `${ARTIFACTS}/memory-1280.png`, fullPage: true });
  t.ok(await noHorizontalOverflow(page), 'memory: no horizontal overflow at 1280 px');

  // The list at both widths.
  await page.click('nav >> text=Checkpoints');
  await page.fill('#filter-prefix', '');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 25);
  t.ok(await noHorizontalOverflow(page), 'list: no horizontal overflow at 1280 px');
  await page.screenshot({ path: `${ARTIFACTS}/list-1280.png` });
  if (process.env.UPDATE_DOCS_SCREENSHOT === '1') {
    await page.fill('#filter-prefix', 'run');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#checkpoints tbody tr').length === 4);
    await page.screenshot({ path: 'docs/dashboard.png', clip: { x: 0, y: 0, width: 1280, height: 440 } });
  }
  await page.setViewportSize({ width: 390, height: 844 });
  for (const hash of ['#/', '#/memory', '#/checkpoint/run1%2Fstep-300']) {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.waitForSelector(hash === '#/memory' ? '.bars' : hash === '#/' ? '#checkpoints tbody td.id' : '#items tbody tr');
    t.ok(await noHorizontalOverflow(page), `${hash}: no horizontal overflow at 390 px`);
    await page.screenshot({ path: `${ARTIFACTS}/${hash === '#/' ? 'list' : hash.slice(2).split('/')[0]}-390.png`, fullPage: true });
  }

  t.same(requested.filter((u) => u.includes(TOKEN) || u.includes('token=')), [], 'the token is never in a URL');
  t.same(requested.filter((u) => !u.startsWith(address)), [], 'nothing is loaded from other hosts');
  t.same(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e)), [], 'nothing blocked by the CSP');
  t.ok(await page.evaluate((token) => sessionStorage.getItem('redis-dcp-admin-token') === token, TOKEN), 'the token is kept in sessionStorage');

  const ref = weights(4096);
  await assertStoreAgrees(t, { redis, expect: { 'run1/step-300': committed(ref), 'run2/corrupt': absent, 'run3/crashed': incomplete }, exhaustive: false });
});
