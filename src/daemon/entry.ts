import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/**
 * Whether the module at `moduleUrl` is the program node was started with (`node file.ts`), not a module
 * imported by a launcher or a test. bin/*.js import an entry and call its `main()`; run directly, the entry
 * calls it itself.
 */
export function isEntry(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === moduleUrl;
  } catch {
    return false;
  }
}
