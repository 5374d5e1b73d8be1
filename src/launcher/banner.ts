// The line of `npm start`'s banner that names the coordinator's URL: written by the launcher,
// read back by the end-to-end tests and the bench, which run `npm start` as a process.
export const GRAPHQL_LABEL = 'GraphQL and GraphiQL';
const BANNER_URL = new RegExp(`${GRAPHQL_LABEL}\\s+(http://\\S+)/graphql`);

/** The coordinator's URL if `line` is the banner's GraphQL line (a `ready` for startChild). */
export const bannerUrl = (line: string): string | undefined => BANNER_URL.exec(line)?.[1];
