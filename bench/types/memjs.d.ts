// Minimal typings for memjs 1.x (the package ships none and @types/memjs is not a dependency).
declare module 'memjs' {
  interface ClientOptions {
    timeout?: number;
    conntimeout?: number;
    retries?: number;
    expires?: number;
    keepAlive?: boolean;
    logger?: { log(...args: unknown[]): void };
  }
  interface Client {
    get(key: string): Promise<{ value: Buffer | null; flags: Buffer | null }>;
    set(key: string, value: string | Buffer, options?: { expires?: number }): Promise<boolean>;
    increment(key: string, amount: number, options?: { initial?: number; expires?: number }): Promise<{ success: boolean; value: number }>;
    flush(): Promise<Record<string, boolean | Error>>;
    stats(callback: (err: Error | null, server: string, stats: Record<string, string>) => void): void;
    close(): void;
    quit(): void;
  }
  const memjs: { Client: { create(servers?: string, options?: ClientOptions): Client } };
  export default memjs;
}
