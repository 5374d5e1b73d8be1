// What every `tessera` subcommand is given: the global options, the client (created on first
// use), the output helpers, and `action`, which turns a command's failure into
// `error CODE: message` and an exit status.
import type { TesseraClient } from '../client.ts';
import type { TesseraClientError } from '../errors.ts';

/** Exit statuses: 1 a failed operation, 2 a usage error, 130 interrupted (as shells report SIGINT). */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, INTERRUPTED: 130 } as const;

/** A command line that makes no sense (as opposed to an operation that failed): exit status 2. */
export class UsageError extends Error {}

export interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

export interface CommandContext {
  globals: () => GlobalOptions;
  client: () => TesseraClient;
  /** Sets the status the command line exits with (the last failure wins). */
  setStatus: (status: number) => void;
  /** Wraps a command's body: its errors print as `error CODE: message` and set status 1 (130 when aborted). */
  action: <A extends unknown[]>(body: (...args: A) => Promise<void>) => (...args: A) => Promise<void>;
}

export const out = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
export const err = (text: string): void => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
export const printJson = (value: unknown): void => void out(JSON.stringify(value, null, 2));
export const printError = (e: TesseraClientError) => err(`error ${e.code}: ${e.message}`);

/** The "Examples:" block of a command's help. */
export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
