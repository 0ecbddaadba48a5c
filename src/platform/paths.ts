// Request paths tollhouse authorizes by prefix (the front door's live and BYOC paths, the URI a
// proxy asks forward-auth about) must mean what they say: the gateway behind may resolve
// dot-segments (RFC 3986 §5.2.4) or decode `%2F` into a separator, and then
// `/live/video-to-video/../../text-to-image` would be authorized and metered as one pipeline
// and served as another. Such paths are refused, not normalized: no client has a reason to
// send them. Pure: no I/O.

/**
 * Whether a raw (still percent-encoded) path has a `.` or `..` segment, or a percent-encoded
 * dot or slash (`%2e`, `%2f`, any case) that a server behind could turn into one.
 * Cheap on the usual path: two `indexOf` scans when it has neither `%` nor `/.`.
 */
export function hasDotSegment(path: string): boolean {
  if (path.includes('%') && /%2[ef]/i.test(path)) return true;
  if (!path.includes('/.')) return false;
  for (const segment of path.split('/')) {
    if (segment === '.' || segment === '..') return true;
  }
  return false;
}
