// Minimal typings for better-sqlite3 12 (@types/better-sqlite3 is not a dependency).
declare module 'better-sqlite3' {
  interface RunResult {
    changes: number;
    lastInsertRowid: number | bigint;
  }
  interface Statement<P extends unknown[] = unknown[]> {
    run(...params: P): RunResult;
    get(...params: P): unknown;
    all(...params: P): unknown[];
    pluck(toggle?: boolean): this;
  }
  interface Transaction<F extends (...args: never[]) => unknown> {
    (...args: Parameters<F>): ReturnType<F>;
    deferred: F;
    immediate: F;
    exclusive: F;
  }
  interface Database {
    prepare<P extends unknown[] = unknown[]>(sql: string): Statement<P>;
    exec(sql: string): this;
    pragma(sql: string, options?: { simple?: boolean }): unknown;
    transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>;
    close(): this;
  }
  interface Options {
    readonly?: boolean;
    fileMustExist?: boolean;
    timeout?: number;
  }
  const Database: { new (filename: string, options?: Options): Database };
  export default Database;
}
