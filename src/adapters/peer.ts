// Checks, when an adapter subpath is imported, that its library (an optional peer dependency) is installed.

/** Thrown on import of an adapter subpath whose library is not installed. */
export class MissingPeerError extends Error {
  readonly code = 'ULTRADICT_MISSING_PEER';
  constructor(readonly subpath: string, readonly peer: string) {
    super(`${subpath} needs the ${peer} package, an optional peer dependency of ultradict: npm install ${peer}`);
    this.name = 'MissingPeerError';
  }
}

/**
 * Throws MissingPeerError unless `peer` resolves from here. Resolution only: nothing is loaded, and the check
 * is synchronous, so the subpath stays loadable through require(esm).
 */
export function requirePeer(subpath: string, peer: string, resolve: (specifier: string) => string = import.meta.resolve): void {
  try {
    resolve(peer);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new MissingPeerError(subpath, peer);
    throw e;
  }
}
