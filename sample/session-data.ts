/** The sample's session fields, declared by merging into the library's SessionData. */
declare module 'nestjs-session-sync' {
  interface SessionData {
    userId?: string;
    visits?: number;
    [pref: `pref:${string}`]: unknown;
  }
}

export {};
