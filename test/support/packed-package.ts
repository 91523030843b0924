import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** Packing runs `prepack` (a TypeScript build of the library) on a clean copy: give it time. */
export const PACK_TIMEOUT = 180_000;

/** The tarball `npm pack` made, and the files npm says it holds (paths inside `package/`). */
export interface PackedPackage {
  tarball: string;
  files: string[];
  /** The directory holding the tarball and the clean copy; remove it when done. */
  workDir: string;
}

/**
 * Packs the library as a release would: `npm pack` (and so its `prepack` build) in a copy of the
 * checkout holding only what git tracks or would track, with no `dist/` of its own. Packing in
 * the repository itself would rebuild `dist/lib` while other test files run the built sample
 * from it, and would let a stale `dist/` from a developer's build slip into the tarball.
 */
export async function packLibrary(): Promise<PackedPackage> {
  const workDir = mkdtempSync(join(tmpdir(), 'session-pack-'));
  const checkout = join(workDir, 'checkout');
  try {
    const { stdout: listed } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
      cwd: REPO,
      maxBuffer: 16 * 1024 * 1024,
    });
    for (const file of listed.split('\0').filter(Boolean)) {
      mkdirSync(dirname(join(checkout, file)), { recursive: true });
      cpSync(join(REPO, file), join(checkout, file), { errorOnExist: false });
    }
    // The build needs the compiler and the types the repository installed, not a new install.
    symlinkSync(join(REPO, 'node_modules'), join(checkout, 'node_modules'), 'dir');
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', workDir], {
      cwd: checkout,
      maxBuffer: 16 * 1024 * 1024,
      timeout: PACK_TIMEOUT,
    });
    const [report] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    return { tarball: join(workDir, report.filename), files: report.files.map((file) => file.path).sort(), workDir };
  } catch (error) {
    rmSync(workDir, { recursive: true, force: true });
    throw error;
  }
}
