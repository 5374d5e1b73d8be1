// The web console as a person uses it, in a real headless Chromium against a real cluster
// (`npm start`: coordinator and datanode processes, tokens required): sign in with the admin
// token, drop two real images (a PNG of several fragments, a JPEG the browser encoded) and a text
// file on the gallery and watch each upload reach 100%, see their thumbnails (renditions), open one (picture,
// metadata, fragments with their replicas), delete it, resume an upload a reload interrupted
// (only the missing fragments are sent), and on the cluster page watch live health
// graphs and a datanode go DOWN when its process is killed with SIGKILL. Screenshots of the
// gallery and the cluster page are saved in the test's temp dir.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createGraphQLClient } from './support/graphql.ts';
import { freePortBlock, isRunning, startClusterProcess, type ClusterProcess } from './support/cluster-process.ts';
import { repoRoot } from './support/datanode-process.ts';
import { makePng } from './support/png.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--headless', '--disable-gpu'];
const BUILT = path.join(repoRoot, 'dist/console/index.html');
const skipReason = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (apt-get install -y chromium)`
  : !existsSync(BUILT)
    ? 'the console is not built (npm install builds it; or npm run build:console)'
    : undefined;
if (skipReason) console.warn(`console-browser.test.ts skipped: ${skipReason}`);

// expect.poll gives up after 1 s by default: on a loaded machine an upload's completeUpload or a
// re-render can take longer, so every wait here allows 15 s unless it says otherwise.
const poll: typeof expect.poll = (fn, options) => expect.poll(fn, { timeout: 15_000, ...options });
const FRAGMENT_SIZE = 256 * 1024;
const PNG_NAME = 'noise.png';
const JPEG_NAME = 'gradient.jpg';
const TEXT_NAME = 'notes.txt';

describe.skipIf(skipReason !== undefined)(
  `web console in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  { timeout: 120_000 },
  () => {
    let dataDir: string;
    let cluster: ClusterProcess | undefined;
    let browser: Browser;
    let page: Page;
    const pageErrors: string[] = [];
    const gql = createGraphQLClient(() => cluster!.url);

    beforeAll(async () => {
      const { chromium } = await import('playwright-core');
      dataDir = await mkdtemp(path.join(tmpdir(), 'tessera-console-'));
      const args = [
        '--datanodes',
        '3',
        '--replication-factor',
        '2',
        '--fragment-size',
        String(FRAGMENT_SIZE),
        '--health-interval-ms',
        '300',
      ];
      cluster = await startClusterProcess(dataDir, await freePortBlock(4), args);
      for (let i = 0; i < 150 && (await gql.request('{ cluster { liveDatanodeCount } }')).data?.cluster.liveDatanodeCount < 3; i++)
        await new Promise((r) => setTimeout(r, 200));
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      // Whatever the page logs as an error (a CSP violation, an exception) fails the last test.
      page.on('pageerror', (e) => pageErrors.push(e.message));
      // With the URL a network error is about (a "Failed to load resource" names none in its text).
      page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.location().url ? `${m.text()} (${m.location().url})` : m.text()));
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await cluster?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('refuses a wrong token, then signs in with the admin token', async () => {
      await page.goto(cluster!.url);
      await page.getByLabel('Token').fill('not-a-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await poll(() => page.getByRole('alert').textContent()).toMatch(/token/i);
      await page.getByLabel('Token').fill(cluster!.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('No images yet').waitFor();
      pageErrors.length = 0; // the wrong token's 401 was expected
    });

    it('uploads two dropped images with per-file progress up to 100%, then shows their thumbnails', async () => {
      const png = makePng(700 * 1024); // three fragments
      const jpeg = Buffer.from(await page.evaluate(browserJpeg), 'base64');
      expect(jpeg.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
      await dropFiles(page, [
        { name: PNG_NAME, type: 'image/png', data: png },
        { name: JPEG_NAME, type: 'image/jpeg', data: jpeg },
        // Not a picture: stored, shown as a tile without a thumbnail, and the gallery still works.
        { name: TEXT_NAME, type: 'text/plain', data: Buffer.from('not a picture\n') },
      ]);
      const seen = new Set<string>();
      for (const name of [PNG_NAME, JPEG_NAME, TEXT_NAME]) {
        const row = page.locator(`.upload[data-name="${name}"]`);
        await poll(
          async () => {
            const pct = (await row.locator('.pct').textContent()) ?? '';
            seen.add(pct);
            return pct;
          },
          { timeout: 30_000 },
        ).toBe('100%');
        await poll(() => row.getAttribute('class')).toContain('stored');
      }
      const stored = (await gql('{ images(first: 10) { edges { node { name size fragmentCount } } } }')).images.edges.map(
        (e: { node: unknown }) => e.node,
      );
      expect(stored).toEqual([
        { name: JPEG_NAME, size: jpeg.length, fragmentCount: 1 },
        { name: PNG_NAME, size: png.length, fragmentCount: 3 },
        { name: TEXT_NAME, size: 14, fragmentCount: 1 },
      ]);
      const thumbs = page.locator('.grid img');
      await poll(() => thumbs.count()).toBe(2);
      await poll(() => page.locator('.grid .file').allTextContents()).toEqual(['text/plain']);
      // Each thumbnail is a decoded picture (a rendition the <img> fetched with its signed URL).
      await poll(
        () => thumbs.evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0)),
        { timeout: 30_000 },
      ).toEqual([true, true]);
      await page.screenshot({ path: path.join(dataDir, 'console-gallery.png') });
    });

    it('filters the gallery by a name prefix', async () => {
      await page.getByLabel('Name prefix').fill('noi');
      await poll(() => page.locator('.grid .name').allTextContents()).toEqual([PNG_NAME]);
      await page.getByLabel('Name prefix').fill('');
      await poll(() => page.locator('.grid .name').allTextContents()).toEqual([JPEG_NAME, PNG_NAME, TEXT_NAME]);
    });

    it('opens an image: picture, metadata, fragments and the datanodes holding each replica; deletes it', async () => {
      await page.locator('.grid a', { hasText: PNG_NAME }).click();
      await page.getByRole('heading', { name: PNG_NAME }).waitFor();
      await poll(() => page.locator('figure img').evaluate((i) => (i as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
      await expect(page.locator('.metadata').textContent()).resolves.toContain('1024 × ');
      const rows = page.locator('.fragments tbody tr');
      await poll(() => rows.count()).toBe(3);
      for (let i = 0; i < 3; i++) await poll(() => rows.nth(i).locator('.replica').count()).toBe(2);
      await page.getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('button', { name: 'Yes, delete' }).click();
      await poll(() => page.locator('.grid .name').allTextContents()).toEqual([JPEG_NAME, TEXT_NAME]);
      expect((await gql('query($n: String!) { image(name: $n) { name } }', { n: PNG_NAME })).image).toBeNull();
    });

    it('resumes an upload a reload interrupted, sending only the fragments the coordinator lacks', async () => {
      const file = { name: 'resumed.png', type: 'image/png', data: makePng(700 * 1024), lastModified: 1_700_000_000_000 };
      // Chromium hands a multipart body to the test only for intercepted requests: every one is routed.
      const sent: number[] = [];
      const aborted: number[] = [];
      let breakLink = true;
      await page.route('**/graphql', (route) => {
        const body = route.request().postDataBuffer()?.toString('latin1') ?? '';
        const index = /uploadFragment[\s\S]*"index":(\d+)/.exec(body)?.[1];
        if (index === undefined) return route.continue();
        sent.push(Number(index));
        // The link breaks for every fragment but the first.
        if (!breakLink || index === '0') return route.continue();
        aborted.push(Number(index));
        return route.abort();
      });
      try {
        await dropFiles(page, [file]);
        const row = page.locator('.upload[data-name="resumed.png"]');
        await poll(() => row.last().getAttribute('class')).toContain('failed');
        breakLink = false;
        const [open] = JSON.parse((await page.evaluate(() => localStorage.getItem('tessera.uploads'))) ?? '[]');
        const received = async () =>
          (await gql('query($id: ID!) { upload(id: $id) { receivedFragments } }', { id: open.uploadId })).upload.receivedFragments;
        await poll(received).toEqual([0]);
        await page.reload();
        await page.getByText('Interrupted: resumed.png').waitFor();
        sent.length = 0;
        await dropFiles(page, [file]);
        await poll(() => row.locator('.pct').textContent(), { timeout: 30_000 }).toBe('100%');
        // 100% is every byte sent; the row turns 'stored' once completeUpload answered.
        await poll(() => row.getAttribute('class'), { timeout: 30_000 }).toContain('stored');
        expect(await row.textContent()).toContain('resumed');
        expect(sent.sort()).toEqual([1, 2]);
        expect((await gql('query($n: String!) { image(name: $n) { size } }', { n: file.name })).image.size).toBe(file.data.length);
        await poll(() => page.getByText('Interrupted').count()).toBe(0);
        // The only errors the page logged are the requests the test broke.
        expect(aborted.sort()).toEqual([1, 2]);
        expect(pageErrors).toEqual(aborted.map(() => `Failed to load resource: net::ERR_FAILED (${new URL('/graphql', cluster!.url)})`));
      } finally {
        // Also when a step above failed: the next test starts without the route or these errors.
        await page.unroute('**/graphql');
        pageErrors.length = 0;
      }
    });

    it('shows live health graphs and a datanode going DOWN when its process is killed', async () => {
      await page.getByRole('link', { name: 'Cluster' }).click();
      const cards = page.locator('.node');
      await poll(() => cards.count()).toBe(3);
      // Health samples arrive over graphql-ws: every card's graphs draw a line of recent samples.
      await poll(() => cards.evaluateAll((all) => Math.min(...all.map((c) => Number((c as HTMLElement).dataset.samples)))), {
        timeout: 30_000,
      }).toBeGreaterThanOrEqual(30);
      await poll(() => page.locator('.node .spark path').count()).toBeGreaterThanOrEqual(9);
      const [victimName, victimPid] = Object.entries(cluster!.childPids()).find(([n]) => n.startsWith('datanode'))!;
      const port = Number(new URL(cluster!.url).port) + Number(victimName.split('-')[1]);
      process.kill(victimPid, 'SIGKILL');
      await poll(() => isRunning(victimPid)).toBe(false);
      const victim = page.locator('.node', { hasText: `127.0.0.1:${port}` });
      await poll(() => victim.getAttribute('data-status'), { timeout: 30_000 }).toBe('DOWN');
      await poll(() => page.locator('.events li.DatanodeStatusChanged').allTextContents()).toContainEqual(expect.stringContaining('DOWN'));
      await poll(() => page.locator('.node:not([data-status="DOWN"])').count()).toBe(2);
      await poll(() => page.locator('.repair').textContent()).toContain('2/3 datanodes live');
      await page.screenshot({ path: path.join(dataDir, 'console-cluster.png'), fullPage: true });
      expect(pageErrors).toEqual([]);
    });
  },
);

/** A real JPEG, encoded by the browser from a canvas (base64). */
async function browserJpeg(): Promise<string> {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 400;
  const ctx = canvas.getContext('2d')!;
  const gradient = ctx.createLinearGradient(0, 0, 640, 400);
  gradient.addColorStop(0, '#ff7a59');
  gradient.addColorStop(1, '#3d5afe');
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, 640, 400);
  const blob = await new Promise<Blob>((resolve) => canvas.toBlob((b) => resolve(b!), 'image/jpeg', 0.9));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Drops files on the gallery as a drag from the desktop does: a drop event with a DataTransfer. */
async function dropFiles(page: Page, files: { name: string; type: string; data: Buffer; lastModified?: number }[]) {
  const transfer = await page.evaluateHandle(
    (list) => {
      const dt = new DataTransfer();
      for (const f of list)
        dt.items.add(
          new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type, lastModified: f.lastModified }),
        );
      return dt;
    },
    files.map((f) => ({ name: f.name, type: f.type, lastModified: f.lastModified, base64: f.data.toString('base64') })),
  );
  await page.locator('.drop-area').dispatchEvent('dragover', { dataTransfer: transfer });
  await page.locator('.drop-area').dispatchEvent('drop', { dataTransfer: transfer });
}
