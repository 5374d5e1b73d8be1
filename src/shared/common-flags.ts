// The flags the coordinator (and `npm start`) and the datanode both take, declared once: where to
// listen, the cluster secret, and the URL others should use. Each program adds its own defaults,
// help and environment variables where they differ.
import { Option } from '@commander-js/extra-typings';
import { loadClusterSecret, SECRET_ENV } from './cluster-secret.ts';
import { httpUrl, wholeNumber } from './flag-values.ts';

export const hostOption = () => new Option('--host <host>', 'address to listen on').default('127.0.0.1');

export const portOption = <const D extends number>(help: string, defaultPort: D) =>
  new Option('--port <port>', help).default(defaultPort).argParser(wholeNumber('--port', 0, 65535));

export const publicUrlOption = (help: string) => new Option('--public-url <url>', help).argParser(httpUrl('--public-url'));

export const secretFileOption = () => new Option('--secret-file <file>', `file holding the cluster secret (or ${SECRET_ENV})`);

/** `effect`: what running without a secret means for this program. */
export const insecureOption = (effect: string) => new Option('--insecure', `run without a cluster secret (${effect})`).default(false);

/**
 * The cluster secret the flags ask for (the file's, else TESSERA_CLUSTER_SECRET's), undefined
 * with --insecure and no secret. Throws a message naming the flags when there is none without
 * --insecure, or when the file cannot be read.
 */
export function clusterSecretFromFlags(flags: { secretFile?: string; insecure: boolean }): string | undefined {
  const secret = loadClusterSecret(flags.secretFile);
  if (secret === undefined && !flags.insecure) {
    throw new Error(`no cluster secret: pass --secret-file F or set ${SECRET_ENV} (or --insecure to run without one)`);
  }
  return secret;
}
