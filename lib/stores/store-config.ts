import { Equals, IsInt, IsOptional, Min, ValidateBy } from 'class-validator';
import type { ValidationArguments } from 'class-validator';
import { SessionMessages } from '../session.errors.js';
import type { StoreType } from '../session.constants.js';

/**
 * Store config objects, one class per store type: each is both the type users write and the
 * class-validator schema their options are checked against at start-up.
 */

/** `{ type: 'memory' }`: one process only, nothing survives a restart. */
export class MemoryStoreConfig {
  @Equals('memory')
  type!: 'memory';

  /** Evict the least recently used session beyond this many. @default unlimited */
  @IsOptional()
  @IsInt({ message: (args: ValidationArguments) => SessionMessages.positiveInteger('{path}', args.value) })
  @Min(1, { message: (args: ValidationArguments) => SessionMessages.positiveInteger('{path}', args.value) })
  maxSessions?: number;

  /** How often expired sessions are reclaimed, in milliseconds. @default 60000 */
  @IsOptional()
  @ValidateBy({
    name: 'isPositiveInteger',
    validator: {
      validate: (v: unknown) => Number.isInteger(v) && (v as number) > 0,
      defaultMessage: (args?: ValidationArguments) => SessionMessages.positiveInteger('{path}', args?.value),
    },
  })
  sweepInterval?: number;
}

/** Every store config object this version accepts. */
export type StoreConfig = MemoryStoreConfig;

export const STORE_CONFIG_CLASSES: Partial<Record<StoreType, new () => object>> = {
  memory: MemoryStoreConfig,
};
