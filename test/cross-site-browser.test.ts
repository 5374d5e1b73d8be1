// Cross-site attacks in a real headless Chromium against a real cluster (`npm start`: coordinator
// and datanode processes): a page on another origin tries forms, fetches and a WebSocket, and
// neither reads nor changes anything; a page on a configured origin can (the harness can see a
// success). Stored HTML/SVG opened on the API's origin runs no script; GraphiQL keeps typed
// headers out of localStorage and works under its CSP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createGraphQLClient } from './support/graphql.ts';
import { freePortBlock, startClusterProcess, type ClusterProcess } from './support/cluster-process.ts';
import { makePng } from './support/png.ts';
import { UPLOAD_IMAGE } from './support/images.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--headless', '--disable-gpu'];
const skipReason = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install -y chromium)`;
if (skipReason) console.warn(`cross-site-browser.test.ts skipped: ${skipReason}`);

/**
 * The one place the cluster under attack starts, with all its flags. Only `trustedOrigin` may
 * call it cross-origin; the attacks must fail even where anonymous callers may write.
 */
const startTargetCluster = (dataDir: string, port: number, trustedOrigin: string) =>
  startClusterProcess(dataDir, port, [
    '--datanodes',
    '2',
    '--replication-factor',
    '2',
    '--cors-origin',
    trustedOrigin,
    '--anonymous',
    'write',
  ]);

/** A tiny web server for one origin: fixed pages, and every request it got (beacons). */
async function startSite(host: string) {
  const pages = new Map<string, { type: string; body: string }>();
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const page = pages.get((req.url ?? '/').split('?')[0]);
    if (!page) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': page.type }).end(page.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://${host}:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    hits,
    page(pathname: string, body: string, type = 'text/html; charset=utf-8') {
      pages.set(pathname, { type, body });
      return origin + pathname;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const VICTIM = 'victim.png';
const SCRIPT_MARK = 'script-ran-on-api-origin';
const DELETE_VICTIM = `mutation { deleteImage(name: "${VICTIM}") }`;
const READ_QUERY = '{ images(first: 10) { totalCount edges { node { name } } } }';
const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;');

describe.skipIf(skipReason !== undefined)(
  `cross-site attacks in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  { timeout: 90_000 },
  () => {
    let dataDir: string;
    let cluster: ClusterProcess | undefined;
    let attacker: Awaited<ReturnType<typeof startSite>>;
    let trusted: Awaited<ReturnType<typeof startSite>>;
    let browser: Browser;
    let context: BrowserContext;
    let api: string;
    const gql = createGraphQLClient(() => cluster!.url);

    const names = async () => ((await gql(READ_QUERY)).images.edges as { node: { name: string } }[]).map((e) => e.node.name).sort();

    beforeAll(async () => {
      const { chromium } = await import('playwright-core');
      dataDir = await mkdtemp(path.join(tmpdir(), 'tessera-cross-site-'));
      // Other host name than the API's and other ports: another origin, as a browser sees it.
      attacker = await startSite('localhost');
      trusted = await startSite('localhost');
      cluster = await startTargetCluster(dataDir, await freePortBlock(3), trusted.origin);
      api = new URL(cluster.url).origin;
      for (let i = 0; i < 100 && (await gql('{ cluster { liveDatanodeCount } }')).cluster.liveDatanodeCount < 2; i++)
        await new Promise((r) => setTimeout(r, 200));
      const uploaded = await gql.multipart(UPLOAD_IMAGE, { n: VICTIM, f: null, t: 'image/png' }, { 'variables.f': { data: makePng(300) } });
      expect(uploaded.errors).toBeUndefined();
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      context = await browser.newContext();
    }, 120_000);

    afterAll(async () => {
      await context?.close();
      await browser?.close();
      await cluster?.stop();
      await attacker?.close();
      await trusted?.close();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    /** Opens `url` in a fresh page; the POSTs to /graphql it caused, with their statuses. */
    async function visit(url: string, settle: (page: Page, posts: readonly unknown[]) => Promise<void>) {
      const page = await context.newPage();
      const posts: { status: number; type: string }[] = [];
      page.on('response', (r) => {
        if (r.url().startsWith(`${api}/graphql`) && r.request().method() === 'POST')
          posts.push({ status: r.status(), type: r.request().headers()['content-type'] ?? '' });
      });
      await page.goto(url);
      await settle(page, posts);
      await page.close();
      return posts;
    }

    /** Until the page's (auto-submitted) POST has been answered; it may come before goto returns. */
    const waitForPost = async (page: Page, posts: readonly unknown[]) => {
      for (let i = 0; i < 300 && posts.length === 0; i++) await page.waitForTimeout(100);
    };

    it('an auto-submitted multipart form can neither upload nor delete', async () => {
      const upload = attacker.page(
        '/form-upload',
        `<form id="f" method="POST" enctype="multipart/form-data" action="${api}/graphql">
        <input name="operations" value="${attr(JSON.stringify({ query: UPLOAD_IMAGE, variables: { n: 'planted.html', f: null, t: 'text/html' } }))}">
        <input name="map" value='{"0":["variables.f"]}'>
        <input type="file" name="0" id="file">
      </form>
      <script>
        const dt = new DataTransfer();
        dt.items.add(new File(['<script>document.title="${SCRIPT_MARK}"<\\/script>'], 'planted.html', { type: 'text/html' }));
        document.getElementById('file').files = dt.files;
        document.getElementById('f').submit();
      </script>`,
      );
      const remove = attacker.page(
        '/form-delete',
        `<form id="f" method="POST" enctype="multipart/form-data" action="${api}/graphql">
        <input name="operations" value="${attr(JSON.stringify({ query: DELETE_VICTIM }))}"><input name="map" value="{}">
      </form><script>document.getElementById('f').submit()</script>`,
      );
      for (const url of [upload, remove]) {
        const posts = await visit(url, waitForPost);
        // The form did reach the coordinator, as multipart, and was refused there.
        expect(posts).toEqual([{ status: 403, type: expect.stringMatching(/^multipart\/form-data; boundary=/) }]);
      }
      expect(await names()).toEqual([VICTIM]);
    });

    it('an auto-submitted url-encoded form cannot delete', async () => {
      const url = attacker.page(
        '/form-urlencoded',
        `<form id="f" method="POST" action="${api}/graphql"><input name="query" value="${attr(DELETE_VICTIM)}"></form><script>document.getElementById('f').submit()</script>`,
      );
      const posts = await visit(url, waitForPost);
      expect(posts).toEqual([{ status: 415, type: 'application/x-www-form-urlencoded' }]);
      expect(await names()).toEqual([VICTIM]);
    });

    it('no-cors fetches (text/plain, multipart, "json") cannot delete', async () => {
      const url = attacker.page('/blank', '<title>attacker</title>');
      const posts = await visit(url, async (page) => {
        await page.evaluate(
          async ({ api, mutation }) => {
            const body = JSON.stringify({ query: mutation });
            const form = new FormData();
            form.append('operations', body);
            form.append('map', '{}');
            await fetch(`${api}/graphql`, { method: 'POST', mode: 'no-cors', body });
            await fetch(`${api}/graphql`, { method: 'POST', mode: 'no-cors', body: form });
            // No page may set a non-simple Content-Type in no-cors mode: the browser drops it.
            await fetch(`${api}/graphql`, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'application/json' }, body });
          },
          { api, mutation: DELETE_VICTIM },
        );
      });
      expect(posts.map((p) => p.status)).toEqual([403, 403, 403]);
      expect(await names()).toEqual([VICTIM]);
    });

    it('a preflighted JSON fetch with credentials is blocked before it is sent, and results cannot be read', async () => {
      const url = attacker.page('/blank2', '<title>attacker</title>');
      let outcome: Record<string, string> = {};
      const posts = await visit(url, async (page) => {
        outcome = await page.evaluate(
          async ({ api, mutation, query }) => {
            const attempt = async (f: () => Promise<Response>) => {
              try {
                const res = await f();
                return `read ${res.status}: ${(await res.text()).slice(0, 100)}`;
              } catch (err) {
                return `blocked: ${(err as Error).name}`;
              }
            };
            const json = { 'content-type': 'application/json' };
            return {
              mutation: await attempt(() =>
                fetch(`${api}/graphql`, {
                  method: 'POST',
                  credentials: 'include',
                  headers: json,
                  body: JSON.stringify({ query: mutation }),
                }),
              ),
              query: await attempt(() => fetch(`${api}/graphql`, { method: 'POST', headers: json, body: JSON.stringify({ query }) })),
              csrfHeader: await attempt(() =>
                fetch(`${api}/graphql?query=${encodeURIComponent(query)}`, { headers: { 'x-graphql-yoga-csrf': '1' } }),
              ),
              simpleGet: await attempt(() => fetch(`${api}/graphql?query=${encodeURIComponent(query)}`)),
              image: await attempt(() => fetch(`${api}/images/victim.png`)),
            };
          },
          { api, mutation: DELETE_VICTIM, query: READ_QUERY },
        );
      });
      expect(outcome).toEqual({
        mutation: 'blocked: TypeError',
        query: 'blocked: TypeError',
        csrfHeader: 'blocked: TypeError',
        simpleGet: 'blocked: TypeError',
        image: 'blocked: TypeError',
      });
      expect(posts).toEqual([]); // the preflight failed: the POSTs never left the browser
      expect(await names()).toEqual([VICTIM]);
    });

    it('a WebSocket to graphql-ws from another origin never opens', async () => {
      const url = attacker.page('/ws', '<title>attacker</title>');
      let result = '';
      await visit(url, async (page) => {
        result = await page.evaluate(
          (wsUrl) =>
            new Promise<string>((resolve) => {
              const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
              ws.onopen = () => {
                ws.send(JSON.stringify({ type: 'connection_init' }));
                resolve('opened');
              };
              ws.onclose = (e) => resolve(`closed ${e.code}`);
            }),
          `${api.replace(/^http/, 'ws')}/graphql`,
        );
      });
      expect(result).toBe('closed 1006');
    });

    it('a page on the configured origin can read and open graphql-ws (the attacks above failed for their origin)', async () => {
      const url = trusted.page('/app', '<title>trusted</title>');
      let result: { query: string; ws: string } = { query: '', ws: '' };
      await visit(url, async (page) => {
        result = await page.evaluate(
          async ({ api, query }) => {
            const res = await fetch(`${api}/graphql`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ query }),
            });
            const body = await res.json();
            const ws = await new Promise<string>((resolve) => {
              const socket = new WebSocket(`${api.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
              socket.onopen = () => {
                socket.close();
                resolve('opened');
              };
              socket.onclose = (e) => resolve(`closed ${e.code}`);
            });
            return { query: JSON.stringify(body.data.images.edges.map((e: { node: { name: string } }) => e.node.name)), ws };
          },
          { api, query: READ_QUERY },
        );
      });
      expect(result).toEqual({ query: JSON.stringify([VICTIM]), ws: 'opened' });
    });

    describe('stored files opened on the API origin', () => {
      const HTML = `<!doctype html><title>upload</title><script>document.title = "${SCRIPT_MARK}"; console.log("${SCRIPT_MARK}")</script><p>hello</p>`;
      const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>console.log("${SCRIPT_MARK}")</script><rect width="10" height="10"/></svg>`;

      beforeAll(async () => {
        for (const [name, data, type] of [
          ['page.html', HTML, 'text/html'],
          ['drawing.svg', SVG, 'image/svg+xml'],
          ['fake.png', HTML, 'image/png'],
        ] as const) {
          const res = await gql.multipart(UPLOAD_IMAGE, { n: name, f: null, t: type }, { 'variables.f': { data: Buffer.from(data) } });
          expect(res.errors).toBeUndefined();
        }
      });

      /** What a page at `url` did: its console, its title, whether it became a download. */
      async function open(url: string) {
        const page = await context.newPage();
        const consoleLines: string[] = [];
        page.on('console', (m) => consoleLines.push(m.text()));
        let downloaded = false;
        page.on('download', () => (downloaded = true));
        try {
          await page.goto(url);
        } catch (err) {
          // Chromium aborts the navigation of an attachment: "Download is starting".
          if (!/Download is starting|ERR_ABORTED/.test(String(err))) throw err;
        }
        await page.waitForTimeout(500);
        const title = await page.title().catch(() => '');
        await page.close();
        return { ran: consoleLines.includes(SCRIPT_MARK) || title === SCRIPT_MARK, downloaded };
      }

      it('the same HTML and SVG do run when served plainly (the check can see a script run)', async () => {
        expect((await open(attacker.page('/plain.html', HTML))).ran).toBe(true);
        expect((await open(attacker.page('/plain.svg', SVG, 'image/svg+xml'))).ran).toBe(true);
      });

      it('an uploaded text/html file is downloaded, not rendered; SVG and HTML-as-PNG render without running script', async () => {
        expect(await open(`${api}/images/page.html`)).toEqual({ ran: false, downloaded: true });
        expect(await open(`${api}/images/drawing.svg`)).toEqual({ ran: false, downloaded: false });
        expect(await open(`${api}/images/fake.png`)).toEqual({ ran: false, downloaded: false });
      });
    });

    it('GraphiQL loads under its CSP and keeps typed headers out of localStorage', async () => {
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      await page.goto(`${api}/graphql`);
      await page.getByRole('button', { name: 'Headers', exact: true }).click();
      const secret = 'Bearer typed-secret-token-1234';
      // insertText: no key events, so the editor's bracket auto-closing adds nothing.
      await page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .monaco-editor').click();
      await page.keyboard.insertText(JSON.stringify({ 'x-probe': secret }));
      await page.locator('.graphiql-query-editor .monaco-editor').click();
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Backspace');
      await page.keyboard.insertText('{ cluster { liveDatanodeCount } }');
      // GraphiQL holds the header in its editor; the check below is about storage only.
      expect(await page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .view-lines').textContent()).toContain(
        'typed-secret-token',
      );
      // Tab state is saved on a debounce after each edit: give it time (the query shows when it has).
      for (let i = 0; i < 50 && !(await page.evaluate(() => JSON.stringify(localStorage))).includes('liveDatanodeCount'); i++)
        await page.waitForTimeout(100);
      const stored = await page.evaluate(() =>
        Object.keys(localStorage)
          .map((k) => `${k}=${localStorage.getItem(k)}`)
          .join('\n'),
      );
      await page.close();
      expect(stored).toContain('liveDatanodeCount'); // GraphiQL does persist its tabs…
      expect(stored).not.toContain('typed-secret-token'); // …but not the headers
      expect(violations).toEqual([]);
    });
  },
);
