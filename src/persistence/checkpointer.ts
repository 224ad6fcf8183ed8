import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Db } from './database.js';

export interface CheckpointerOptions {
  /** @defaultValue 1000 */
  intervalMs?: number;
  /** Auto-checkpoint threshold left on the main connection as a safety net. @defaultValue 20000 pages */
  fallbackPages?: number;
}

export interface Checkpointer {
  close(): Promise<void>;
}

// Runs in its own thread with its own connection: a PASSIVE checkpoint never blocks the writer, and its
// fsync no longer lands inside a command's commit on the main thread.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message || err) }); }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'close') {
    clearInterval(timer);
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
    db.close();
    parentPort.close();
  }
});
`;

/**
 * Moves WAL checkpoints off the main thread: the main connection's auto-checkpoint is raised to a high
 * safety threshold and a worker thread checkpoints every `intervalMs`.
 */
export function startCheckpointer(db: Db, options: CheckpointerOptions = {}): Checkpointer {
  const intervalMs = options.intervalMs ?? 1000;
  db.pragma(`wal_autocheckpoint = ${options.fallbackPages ?? 20_000}`);
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: db.name, intervalMs, driver } });
  worker.unref();
  worker.on('error', () => db.pragma('wal_autocheckpoint = 1000'));
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Held again while closing: unref'd, the process could end before the worker's exit is seen.
        worker.ref();
        worker.once('exit', () => resolve());
        worker.postMessage('close');
        setTimeout(() => void worker.terminate(), 2000).unref();
      });
      return closing;
    },
  };
}
