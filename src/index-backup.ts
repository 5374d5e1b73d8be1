// `npm run index-backup -- [--data-dir DIR] FILE`: an online, consistent copy of the coordinator's
// index (SQLite's backup API) while the coordinator keeps serving. Restore: see the README's
// "What survives what".
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { INDEX_FILE } from './coordinator.ts';

const program = new Command('index-backup')
  .description("Copy the coordinator's index to FILE while it runs (SQLite online backup).")
  .argument('<file>', 'where to write the copy (must not exist)')
  .option('--data-dir <dir>', "the coordinator's --data-dir, or npm start's (its coordinator/ folder is used)", './data')
  .showHelpAfterError();
program.parse();
const [target] = program.args;
const { dataDir } = program.opts<{ dataDir: string }>();

const candidates = [path.join(dataDir, INDEX_FILE), path.join(dataDir, 'coordinator', INDEX_FILE)];
const source = candidates.find((f) => fs.existsSync(f));
if (!source) program.error(`No index in ${dataDir} (looked for ${candidates.join(' and ')}).`);
if (fs.existsSync(target)) program.error(`${target} exists; the backup never overwrites a file.`);

const db = new Database(source!, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
try {
  const { totalPages } = await db.backup(target);
  process.stdout.write(
    `${JSON.stringify({ event: 'backup', from: path.resolve(source!), to: path.resolve(target), pages: totalPages })}\n`,
  );
} catch (err) {
  fs.rmSync(target, { force: true });
  program.error(`Backup failed: ${(err as Error).message}`);
} finally {
  db.close();
}
