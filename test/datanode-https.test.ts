// HTTPS datanode URLs: a datanode process serving TLS with a self-signed certificate (made here
// with openssl) is trusted by a coordinator given that certificate as --datanode-ca-file, and
// stays DOWN for one that was not (the certificate is verified, not ignored).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { until } from './support/poll.ts';
import { bytesOf, download, uploadImage } from './support/images.ts';

const SECRET = 'https-secret';
let dir: string;
let node: DatanodeProcess | undefined;
const coordinators: Awaited<ReturnType<typeof startCoordinatorOver>>[] = [];

/** A self-signed certificate for 127.0.0.1, or why none could be made. */
function makeCertificate(into: string): { cert: string; key: string } | string {
  const cert = join(into, 'cert.pem');
  const key = join(into, 'key.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { cert, key };
  } catch (err) {
    return `openssl could not make a certificate: ${(err as Error).message}`;
  }
}

let certificate: { cert: string; key: string } | string = 'not made yet';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-https-'));
  certificate = makeCertificate(dir);
  if (typeof certificate === 'string') return;
  node = await startDatanodeProcess({
    dataDir: join(dir, 'dn'),
    secret: SECRET,
    extraArgs: ['--tls-cert', certificate.cert, '--tls-key', certificate.key],
  });
}, 60_000);

afterAll(async () => {
  for (const c of coordinators) await c.close();
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('HTTPS datanodes', () => {
  it('serve fragments to a coordinator that trusts their CA, and not to one that does not', async (ctx) => {
    if (typeof certificate === 'string') return ctx.skip(certificate);
    expect(node!.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const thresholds = { cpuPercent: 100, memoryPercent: 100, diskPercent: 100 };

    const trusting = await startCoordinatorOver([node!.url], {
      secret: SECRET,
      replicationFactor: 1,
      fragmentSize: 16 * 1024,
      datanodeCaFile: certificate.cert,
      thresholds,
    });
    coordinators.push(trusting);
    await until(() => trusting.app.registry.live().length === 1, 'the https datanode live', 15_000);
    const png = bytesOf(40 * 1024, 5);
    await uploadImage(asCluster(trusting), 'tls/a.png', png, 'image/png');
    expect((await download(asCluster(trusting), 'tls/a.png')).body.equals(png)).toBe(true);

    const untrusting = await startCoordinatorOver([node!.url], { secret: SECRET, replicationFactor: 1, thresholds });
    coordinators.push(untrusting);
    await until(() => untrusting.app.registry.all()[0]?.status === 'DOWN', 'DOWN without the CA', 15_000);
    expect(untrusting.app.registry.live()).toHaveLength(0);
  }, 60_000);
});
