// Prints each abuse case against a real coordinator process: its answer, how long it
// took, the coordinator's peak RSS and how the other client fared (npx tsx bench/abuse-figures.ts).
import {
  bigQuery,
  fragmentDataAliases,
  greedyWsClient,
  listingAliases,
  measure,
  MiB,
  pinnedWindows,
  seedImage,
  seedSmallImages,
  stalledMultipart,
  startAbuseCluster,
  type AbuseCluster,
} from '../test/support/abuse.ts';

const only = process.argv.slice(2);
const cases: [string, string[], (c: AbuseCluster) => () => Promise<{ outcome: string; codes: string[] }>][] = [
  ['60 MB query', [], (c) => bigQuery(c.url)],
  ['100 aliases of fragmentData', [], (c) => fragmentDataAliases(c.url, 'seed', 100)],
  ['8 parallel queries of 150 aliases of fragmentData', [], (c) => fragmentDataAliases(c.url, 'seed', 150, 8)],
  ['500 aliases of images(first: 1000)', [], (c) => listingAliases(c.url, 500)],
  ['20 uploads sending fragments 1-8 but not 0', [], (c) => pinnedWindows(c, 20)],
  [
    '8 multipart bodies stalled at 40 of 60 MB',
    [],
    (c) => async () => {
      const r = await Promise.all(
        Array.from({ length: 8 }, () =>
          stalledMultipart(c.url, {
            declared: 60 * MiB,
            send: 40 * MiB,
            query: 'mutation($f: File!) { uploadImage(name: "stalled", file: $f) { name } }',
            waitMs: 60_000,
          }),
        ),
      );
      return { outcome: r.map((x) => `${x.answered} after ${x.afterMs} ms`).join(' | '), codes: [] };
    },
  ],
  [
    'uploadImage of 50 MB past --max-upload-image-size 1 MiB (sends 20 MB, then stalls)',
    ['--max-upload-image-size', String(MiB)],
    (c) => async () => {
      const r = await stalledMultipart(c.url, {
        declared: 50 * MiB,
        send: 20 * MiB,
        query: 'mutation($f: File!) { uploadImage(name: "big", file: $f) { name } }',
        waitMs: 10_000,
      });
      return { outcome: `${r.answered} after ${r.afterMs} ms`, codes: [] };
    },
  ],
  [
    'graphql-ws client with 20,000 subscriptions that stops reading (reads again after 3 s)',
    [],
    (c) => () => greedyWsClient(c.url, 20_000, 20_000, 3_000),
  ],
];

for (const [name, args, run] of cases) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  const cluster = await startAbuseCluster(args);
  try {
    if (name.includes('fragmentData')) await seedImage(cluster, 'seed', 2);
    if (name.includes('images(first')) await seedSmallImages(cluster, 'list', 1000);
    const f = await measure(cluster, run(cluster));
    console.log(JSON.stringify({ case: name, ...f }));
  } finally {
    await cluster.close();
  }
}
