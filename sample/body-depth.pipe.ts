import { BadRequestException, Injectable } from '@nestjs/common';
import type { ArgumentMetadata, PipeTransform } from '@nestjs/common';

/** Deeper than any body the sample's routes take (a preference is a few levels at most). */
export const MAX_BODY_DEPTH = 32;

/**
 * Refuses a request body nested deeper than {@link MAX_BODY_DEPTH} with a 400, before the
 * ValidationPipe sees it: class-transformer recurses once per level and fails with a 500 from
 * about 1,300 levels, and a session field that deep would not serialise either (SPEC §4: a
 * malformed body is a 4xx). The walk is iterative, so no depth can overflow the stack here.
 */
@Injectable()
export class BodyDepthPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type === 'body' && deeperThan(value, MAX_BODY_DEPTH)) {
      throw new BadRequestException({
        statusCode: 400,
        error: 'Bad Request',
        code: 'BODY_TOO_DEEP',
        message: `The request body is nested more than ${MAX_BODY_DEPTH} levels deep. Send a flatter JSON value.`,
      });
    }
    return value;
  }
}

function deeperThan(root: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[root, 0]];
  while (pending.length > 0) {
    const [value, depth] = pending.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= limit) return true;
    for (const child of Object.values(value)) pending.push([child, depth + 1]);
  }
  return false;
}
