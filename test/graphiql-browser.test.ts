// GraphiQL as a person uses it, in a real headless Chromium against a real cluster (`npm start`,
// tokens required): the admin token typed in the Headers pane, a query executed with the run
// button and its answer in the result pane; a subscription started the same way (graphql-ws,
// whose token GraphiQL sends in the operation's extensions, not in connection_init) receives
// events; without a token the result pane says why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createGraphQLClient } from './support/graphql.ts';
import { freePortBlock, startClusterProcess, type ClusterProcess } from './support/cluster-process.ts';
import { makePng } from './support/png.ts';
import { UPLOAD_IMAGE } from './support/images.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--headless', '--disable-gpu'];
const skipReason = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install -y chromium)`;
if (skipReason) console.warn(`graphiql-browser.test.ts skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)(
  `GraphiQL in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  { timeout: 90_000 },
  () => {
    let dataDir: string;
    let cluster: ClusterProcess | undefined;
    let browser: Browser;
    const gql = createGraphQLClient(() => cluster!.url);

    beforeAll(async () => {
      const { chromium } = await import('playwright-core');
      dataDir = await mkdtemp(path.join(tmpdir(), 'tessera-graphiql-'));
      cluster = await startClusterProcess(dataDir, await freePortBlock(3), ['--datanodes', '2', '--replication-factor', '2']);
      for (let i = 0; i < 100 && (await gql('{ cluster { liveDatanodeCount } }')).data?.cluster.liveDatanodeCount < 2; i++)
        await new Promise((r) => setTimeout(r, 200));
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await cluster?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    /** What a page of GraphiQL sent: HTTP requests to /graphql and graphql-ws frames. */
    interface Traffic {
      posts: { body: string; authorization?: string }[];
      wsSent: string[];
      wsReceived: string[];
    }

    /** Opens GraphiQL, types `headers` (if any) in the Headers pane and `query` in the editor. */
    async function openGraphiQL(query: string, headers?: Record<string, string>): Promise<{ page: Page; traffic: Traffic }> {
      const page = await browser.newPage();
      const traffic: Traffic = { posts: [], wsSent: [], wsReceived: [] };
      page.on('request', (r) => {
        if (r.method() === 'POST' && r.url().endsWith('/graphql'))
          traffic.posts.push({ body: r.postData() ?? '', authorization: r.headers()['authorization'] });
      });
      page.on('websocket', (ws) => {
        ws.on('framesent', (f) => traffic.wsSent.push(String(f.payload)));
        ws.on('framereceived', (f) => traffic.wsReceived.push(String(f.payload)));
      });
      await page.goto(`${cluster!.url}/graphql`);
      if (headers) {
        await page.getByRole('button', { name: 'Headers', exact: true }).click();
        // insertText: no key events, so the editor's bracket auto-closing adds nothing.
        await page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .monaco-editor').click();
        await page.keyboard.insertText(JSON.stringify(headers));
      }
      await page.locator('.graphiql-query-editor .monaco-editor').click();
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Backspace');
      await page.keyboard.insertText(query);
      return { page, traffic };
    }

    /** The result pane's text once it contains `expected` (or what it shows after 30 s). */
    async function resultPaneOnce(page: Page, expected: string): Promise<string> {
      let text = '';
      for (let i = 0; i < 300; i++) {
        text = (await page.locator('.graphiql-response').textContent()) ?? '';
        if (text.includes(expected)) break;
        await page.waitForTimeout(100);
      }
      return text;
    }

    it('a query with the token in the Headers pane runs from the run button and shows its answer', async () => {
      const { page, traffic } = await openGraphiQL('{ cluster { liveDatanodeCount replicationFactor } }', {
        Authorization: `Bearer ${cluster!.token}`,
      });
      await page.locator('.graphiql-execute-button').click();
      const shown = await resultPaneOnce(page, '"liveDatanodeCount"');
      await page.close();
      expect(shown.replace(/\s+/g, '')).toContain('"cluster":{"liveDatanodeCount":2,"replicationFactor":2}');
      // Sent over HTTP with the typed header (the introspection before it went without).
      expect(traffic.posts.filter((p) => p.body.includes('liveDatanodeCount')).map((p) => p.authorization)).toEqual([
        `Bearer ${cluster!.token}`,
      ]);
    });

    it('a subscription with the token in the Headers pane starts over graphql-ws and shows events', async () => {
      const { page, traffic } = await openGraphiQL('subscription { clusterEvents { __typename ... on ImageStored { name } } }', {
        Authorization: `Bearer ${cluster!.token}`,
      });
      await page.keyboard.press('Control+Enter');
      // The subscription is live once its subscribe frame went out and nothing came back as an error.
      for (let i = 0; i < 300 && !traffic.wsSent.some((f) => f.includes('"subscribe"')); i++) await page.waitForTimeout(100);
      // GraphiQL's connection_init is empty: the token travels in the operation's extensions.
      expect(traffic.wsSent[0]).toBe('{"type":"connection_init","payload":{}}');
      expect(traffic.wsSent.find((f) => f.includes('"subscribe"'))).toContain(`"Authorization":"Bearer ${cluster!.token}"`);
      await page.waitForTimeout(500);
      const uploaded = await gql.multipart(
        UPLOAD_IMAGE,
        { n: 'seen-in-graphiql.png', f: null, t: 'image/png' },
        { 'variables.f': { data: makePng(200) } },
      );
      expect(uploaded.errors).toBeUndefined();
      const shown = await resultPaneOnce(page, 'seen-in-graphiql.png');
      await page.close();
      expect(shown.replace(/\s+/g, '')).toContain('"clusterEvents":{"__typename":"ImageStored","name":"seen-in-graphiql.png"}');
    });

    it('a subscription without a token is answered UNAUTHENTICATED, shown in the result pane', async () => {
      const { page, traffic } = await openGraphiQL('subscription { clusterEvents { __typename } }');
      await page.locator('.graphiql-execute-button').click();
      for (let i = 0; i < 300 && !traffic.wsReceived.some((f) => f.includes('"error"')); i++) await page.waitForTimeout(100);
      const shown = await resultPaneOnce(page, 'UNAUTHENTICATED');
      await page.close();
      // An error for the operation (not a closed socket, which GraphiQL shows as {"isTrusted": true}).
      expect(traffic.wsReceived.find((f) => f.includes('"error"'))).toContain('"code":"UNAUTHENTICATED"');
      expect(shown.replace(/\s+/g, '')).toContain('Thiscallneedsatoken');
    });
  },
);
