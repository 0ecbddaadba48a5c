// The real Livepeer protocol contracts for tests: the Hardhat artifacts (ABI and deployable
// bytecode) that the npm package @livepeer/sdk ships, read from its registry tarball.
//
// Why the tarball and not a dev dependency: only four JSON files of the package are used, and
// depending on it installs its 112 runtime dependencies (ethjs, ethereumjs-tx: old crypto
// code, install scripts npm 11 blocks with warnings, 49 MB) into every `npm ci` and into the
// lock file. `npm pack` (the ordinary npm client, the only network the tests use) fetches the
// one pinned version; its sha512 must equal INTEGRITY below — the same check a lock file entry
// makes — before anything is read from it. The four files are then cached in
// node_modules/.cache/livepeer-sdk-<version>/ (dropped by `npm ci`, ignored by git).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { InterfaceAbi } from 'ethers';
import { ROOT } from '../process.ts';

export const SDK_VERSION = '1.0.1-alpha.10';
/** `npm view @livepeer/sdk@1.0.1-alpha.10 dist.integrity`. */
const INTEGRITY =
  'sha512-49OVRV6kGO3TCxDJTBAFbfNuB2/QstTXDKzfT/rw8sXD22hm82XTdYk3gs1cXR+Ky2kNaRLCLagQzPQjY/bp3A==';

/** Artifact name → its path in the package. */
const FILES = {
  Controller: 'package/abis/Controller.sol/Controller.json',
  TicketBroker: 'package/abis/pm/TicketBroker.sol/TicketBroker.json',
  Minter: 'package/abis/token/Minter.sol/Minter.json',
  GenericMock: 'package/abis/test/mocks/GenericMock.sol/GenericMock.json',
} as const;

export type ArtifactName = keyof typeof FILES;
export interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

const CACHE_DIR = path.join(ROOT, 'node_modules', '.cache', `livepeer-sdk-${SDK_VERSION}`);

export function livepeerArtifacts(): Record<ArtifactName, Artifact> {
  const read = () =>
    Object.fromEntries(
      Object.keys(FILES).map((name) => {
        const json = JSON.parse(readFileSync(path.join(CACHE_DIR, `${name}.json`), 'utf8')) as {
          abi: InterfaceAbi;
          bytecode: string;
        };
        return [name, { abi: json.abi, bytecode: json.bytecode }];
      }),
    ) as Record<ArtifactName, Artifact>;
  try {
    return read();
  } catch {
    // not cached yet
  }
  const work = mkdtempSync(path.join(tmpdir(), 'livepeer-sdk-'));
  try {
    execFileSync('npm', ['pack', `@livepeer/sdk@${SDK_VERSION}`, '--pack-destination', work], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const tarball = readFileSync(path.join(work, `livepeer-sdk-${SDK_VERSION}.tgz`));
    const digest = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
    if (digest !== INTEGRITY) {
      throw new Error(`@livepeer/sdk@${SDK_VERSION}: integrity ${digest}, expected ${INTEGRITY}`);
    }
    const entries = untar(gunzipSync(tarball));
    // Written under a temporary name, then renamed: parallel test files may get here at once.
    const staging = path.join(work, 'artifacts');
    mkdirSync(staging);
    for (const [name, file] of Object.entries(FILES)) {
      const content = entries.get(file);
      if (content === undefined) throw new Error(`@livepeer/sdk@${SDK_VERSION} lacks ${file}`);
      writeFileSync(path.join(staging, `${name}.json`), content);
    }
    mkdirSync(path.dirname(CACHE_DIR), { recursive: true });
    try {
      renameSync(staging, CACHE_DIR);
    } catch {
      // Another process cached it first: same bytes.
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return read();
}

/** The regular files of a ustar archive (npm tarballs), by path. */
function untar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let offset = 0; offset + 512 <= archive.length;) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const name = field(0, 100);
    const prefix = field(345, 155);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1);
    const body = archive.subarray(offset + 512, offset + 512 + size);
    if (type === '0' || type === '') files.set(prefix ? `${prefix}/${name}` : name, body);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}
