// Which Node.js can run tollhouse: one that strips TypeScript types by default (22.18 and
// later 22.x releases, 23.6 and later). Plain JavaScript that Node 18 can parse, so an older
// Node reads this file and prints a sentence instead of failing on `src/main.ts` with
// "Unknown file extension .ts".

export const NEEDED = '22.18';

/** The one-line refusal for `version` (as in process.versions.node), or null when it will do. */
export function nodeVersionProblem(version) {
  const [major, minor] = String(version)
    .split('.')
    .map((part) => Number.parseInt(part, 10));
  const supported = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
  if (supported) return null;
  return `tollhouse needs Node.js ${NEEDED} or newer (found v${version}); see README 'Getting Node 24'`;
}
