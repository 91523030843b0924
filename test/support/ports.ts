import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The developer's own Redis lives here; the harness must never hand it out. */
const SHARED_REDIS_PORT = 6379;
const LOWEST_PORT = 10_000;

/** Ports handed out by this process, so two servers started back to back never share one. */
const handedOut = new Set<number>();

/** Binds `port` (0: any) on 127.0.0.1 and releases it; resolves with the port, or 0 if it is taken. */
function probe(port: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(0));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * The first port the kernel uses for outgoing connections (Linux), or undefined elsewhere.
 * Below it, no client socket can grab a port between our check and redis-server's bind, and a
 * client reconnecting to a killed server cannot connect to itself (TCP simultaneous open).
 */
function ephemeralRangeStart(): number | undefined {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(low) && low > LOWEST_PORT + 1_000 ? low : undefined;
  } catch {
    return undefined;
  }
}

function usable(port: number): boolean {
  return port > 0 && port !== SHARED_REDIS_PORT && !handedOut.has(port);
}

/**
 * Finds a TCP port on 127.0.0.1 that nobody listens on right now and that this process has not
 * handed out before. On Linux it picks at random below the ephemeral range (so outgoing
 * connections never take it); elsewhere it asks the OS for one. Never 6379.
 *
 * The port is free when this resolves, not reserved: another process may still bind it first,
 * which is why `startRedisServer()` retries on "Address already in use".
 *
 * @example
 * const port = await freePort();
 * spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1']);
 */
export async function freePort(): Promise<number> {
  const rangeEnd = ephemeralRangeStart();
  if (rangeEnd !== undefined) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const candidate = LOWEST_PORT + Math.floor(Math.random() * (rangeEnd - LOWEST_PORT));
      if (usable(candidate) && (await probe(candidate)) === candidate) {
        handedOut.add(candidate);
        return candidate;
      }
    }
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await probe(0);
    if (usable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: found no free port on 127.0.0.1 that this process had not handed out already.');
}
