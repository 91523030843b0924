import type { AbstractHttpAdapter } from '@nestjs/core';

/** The HTTP platforms the sample runs on, chosen by `HTTP_ADAPTER`. */
export const SAMPLE_PLATFORMS = ['express', 'fastify'] as const;
export type SamplePlatform = (typeof SAMPLE_PLATFORMS)[number];

type Env = Record<string, string | undefined>;

/** The platform `HTTP_ADAPTER` names (Express when unset), or a start-up error that names the fix. */
export function platformFromEnv(env: Env): SamplePlatform {
  const value = env.HTTP_ADAPTER || 'express';
  if ((SAMPLE_PLATFORMS as readonly string[]).includes(value)) return value as SamplePlatform;
  throw new Error(`Sample: HTTP_ADAPTER must be one of ${SAMPLE_PLATFORMS.join(', ')} (got "${value}"). Unset it for Express.`);
}

/**
 * `TRUST_PROXY` as both platforms take it: `true`/`false`, a number of hops, or a
 * comma-separated list of proxy addresses (Express's `trust proxy`, Fastify's `trustProxy`).
 */
export function trustProxyFromEnv(env: Env): boolean | number | string | undefined {
  const value = env.TRUST_PROXY?.trim();
  if (!value) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  return /^\d+$/.test(value) ? Number(value) : value;
}

/**
 * The HTTP adapter for the sample, on the platform `HTTP_ADAPTER` names and trusting the proxies
 * `TRUST_PROXY` names (so that `secure: 'auto'` cookies work behind a TLS-terminating proxy).
 */
export function sampleHttpAdapter(env: Env): Promise<AbstractHttpAdapter> {
  return httpAdapterFor(platformFromEnv(env), trustProxyFromEnv(env));
}

/**
 * A Nest HTTP adapter for `platform`, trusting `trustProxy` (Express's `trust proxy`, Fastify's
 * `trustProxy`). Each platform's package is loaded only when chosen: an Express-only install
 * never needs Fastify's. The tests build their applications with it too.
 */
export async function httpAdapterFor(platform: SamplePlatform, trustProxy?: boolean | number | string): Promise<AbstractHttpAdapter> {
  if (platform === 'fastify') {
    const { FastifyAdapter } = await importPlatform<typeof import('@nestjs/platform-fastify')>('@nestjs/platform-fastify');
    // Fastify takes a hop count too, though its option type leaves numbers out.
    return new FastifyAdapter({ trustProxy: (trustProxy ?? false) as boolean | string });
  }
  const { ExpressAdapter } = await importPlatform<typeof import('@nestjs/platform-express')>('@nestjs/platform-express');
  const adapter = new ExpressAdapter();
  if (trustProxy !== undefined) adapter.set('trust proxy', trustProxy);
  return adapter;
}

async function importPlatform<T>(pkg: string): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new Error(`Sample: HTTP_ADAPTER needs the "${pkg}" package, which is not installed. Install it with: npm install ${pkg}`);
  }
}
