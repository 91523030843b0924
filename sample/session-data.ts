/**
 * The sample's session fields, declared by merging into the library's SessionData. An application
 * writes `declare module 'nestjs-session-sync'`; the sample, inside the package, names the module
 * by its path so that it compiles to any output directory.
 */
declare module '../lib/index.js' {
  interface SessionData {
    userId?: string;
    visits?: number;
    [pref: `pref:${string}`]: unknown;
  }
}

export {};
