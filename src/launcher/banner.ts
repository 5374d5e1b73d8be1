// The line of `npm start`'s banner that names the coordinator's URL: written by the launcher,
// read back by the end-to-end tests and the bench, which run `npm start` as a process.
import type { Readable } from 'node:stream';

export const GRAPHQL_LABEL = 'GraphQL and GraphiQL';
const BANNER_URL = new RegExp(`${GRAPHQL_LABEL}\\s+(http://\\S+)/graphql`);

/** The coordinator's URL once the banner shows in `output()`; rejects on exit or timeout. */
export function waitForBannerUrl(stdout: Readable, output: () => string, exited: Promise<number | null>, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cluster did not start in ${timeoutMs / 1000} s:\n${output()}`)), timeoutMs);
    const check = () => {
      const url = BANNER_URL.exec(output())?.[1];
      if (url) {
        clearTimeout(timer);
        stdout.off('data', check);
        resolve(url);
      }
    };
    stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the cluster exited with ${code} before it was up:\n${output()}`));
    });
  });
}
