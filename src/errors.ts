// Error classes of ultradict: every failure the library reports is one of these, all extending UltraDictError.

/** Base class of every error thrown by ultradict. `code` is stable and meant for programs. */
export class UltraDictError extends Error {
  readonly code: string = 'ULTRADICT_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A method was called on a dict after `close()`. */
export class AlreadyClosedError extends UltraDictError {
  override readonly code = 'ULTRADICT_CLOSED';
}

/** A call that is not allowed in the current state (e.g. `dump()` inside a transaction). Nothing was changed. */
export class InvalidStateError extends UltraDictError {
  override readonly code = 'ULTRADICT_INVALID_STATE';
}

/** `create: true` but a dict of that name exists. */
export class AlreadyExistsError extends UltraDictError {
  override readonly code = 'ULTRADICT_EXISTS';
}

/** `create: false` (or `ultradict get` and the other CLI commands that attach) but no dict of that name exists. */
export class NotFoundError extends UltraDictError {
  override readonly code = 'ULTRADICT_NOT_FOUND';
}

/** Options given when attaching differ from those the dict was created with. */
export class ParameterMismatchError extends UltraDictError {
  override readonly code = 'ULTRADICT_PARAMETER_MISMATCH';
}

/** The fixed full-dump area (`fullDumpSize`) is too small for the dict; the write was rolled back. */
export class FullDumpMemoryFullError extends UltraDictError {
  override readonly code = 'ULTRADICT_FULL_DUMP_MEMORY_FULL';
}

/** The lock could not be taken within the timeout. `holderPid` is the process holding it (if known). */
export class LockTimeoutError extends UltraDictError {
  override readonly code = 'ULTRADICT_LOCK_TIMEOUT';
  constructor(
    message: string,
    readonly holderPid: number | null,
  ) {
    super(message);
  }
}

/** A value (or key) cannot be serialized with the dict's serializer; nothing was written. */
export class SerializationError extends UltraDictError {
  override readonly code = 'ULTRADICT_SERIALIZATION';
}

/** A shared-memory segment is not an ultradict segment, of another version, or corrupt. */
export class CorruptSegmentError extends UltraDictError {
  override readonly code = 'ULTRADICT_CORRUPT_SEGMENT';
}

/**
 * A segment of the dict belongs to another user than the one trusted (by default: this process's
 * effective uid; see the `owner` option), or its permission bits differ from the dict's mode: refused
 * before anything in it was read or written. `file`, `uid` and `mode` describe the file found.
 */
export class ForeignSegmentError extends UltraDictError {
  override readonly code = 'ULTRADICT_FOREIGN_SEGMENT';
  constructor(
    message: string,
    readonly file: string,
    readonly uid: number,
    readonly mode: number,
  ) {
    super(message);
  }
}

/** The dict name is not valid (characters, length). */
export class InvalidNameError extends UltraDictError {
  override readonly code = 'ULTRADICT_INVALID_NAME';
}

/** The operating system refused shared memory (no space, no permission, too many files, ...). */
export class SharedMemoryError extends UltraDictError {
  override readonly code: string = 'ULTRADICT_SHARED_MEMORY';
  constructor(
    message: string,
    readonly osCode: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Every attach slot of the dict's control block is held by a live thread. */
export class TooManyAttachedError extends UltraDictError {
  override readonly code = 'ULTRADICT_TOO_MANY_ATTACHED';
}

/** The platform (or runtime) is not supported by the native layer. */
export class UnsupportedPlatformError extends UltraDictError {
  override readonly code = 'ULTRADICT_UNSUPPORTED_PLATFORM';
}

/**
 * Redis replication failed: Redis unreachable, a key that is not an ultradict stream, a write Redis
 * rejected, or a flush that was not acknowledged in time. `cause` holds the underlying error.
 */
export class ReplicationError extends UltraDictError {
  override readonly code = 'ULTRADICT_REPLICATION';
}

/**
 * The operation or option is not supported by this kind of dict: expiry (`ttl`) through Redis
 * replication (`RedisDict`, and the bridge on a dict created with a `ttl` option).
 */
export class NotSupportedError extends UltraDictError {
  override readonly code = 'ULTRADICT_NOT_SUPPORTED';
}

/** An atomic compute/increment/transaction on a Redis-backed dict kept conflicting past its timeout. */
export class TransactionConflictError extends UltraDictError {
  override readonly code = 'ULTRADICT_TRANSACTION_CONFLICT';
}

/** A write of an entry (encoded key and value) larger than the dict's `maxBytes`: it could never fit; nothing was written. */
export class EntryTooLargeError extends UltraDictError {
  override readonly code = 'ULTRADICT_ENTRY_TOO_LARGE';
}

/** fetch(): the loader of the key failed in another thread or process (its message is included). */
export class LoadFailedError extends UltraDictError {
  override readonly code = 'ULTRADICT_LOAD_FAILED';
}

/**
 * `waitForChange()` or `watch()` was aborted through its `signal`. As with Node's own APIs
 * (`events.once`, `timers/promises`, `fs/promises`): `name` is `'AbortError'`, `code` is `'ABORT_ERR'`
 * and `cause` is `signal.reason`.
 */
export class AbortError extends UltraDictError {
  override readonly code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}
