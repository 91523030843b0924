/**
 * The building blocks of option validation, shared by the module's options and the store config
 * classes: class-validator rules whose messages come from session.errors.ts, and how options are
 * copied onto their class and checked against it.
 */
import { applyDecorators } from '@nestjs/common';
import { IsOptional, IsString, Matches, MinLength, ValidateBy, validateSync } from 'class-validator';
import type { ValidationArguments, ValidationError } from 'class-validator';
import ms from 'ms';
import { SessionMessages } from './session.errors.js';

/** A duration: milliseconds, or a string `ms` understands (`'30m'`, `'12h'`, `'7d'`). */
export type Duration = number | string;

/** Written in messages where the option's full path goes; filled in when errors are collected. */
export const PATH = '{path}';

/** Milliseconds for a duration, or undefined when the value is not one (or not above `min`). */
export function parseDuration(value: unknown, min = 1): number | undefined {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? ms(value as ms.StringValue) : NaN;
  return typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= min ? Math.floor(parsed) : undefined;
}

/** RFC 6265 token characters: what a cookie name may be made of. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A class-validator rule whose message is built from the value, with the option path filled in later. */
export const Rule = (name: string, test: (value: unknown) => boolean, message: (value: unknown) => string) =>
  ValidateBy({
    name,
    validator: {
      validate: (value: unknown) => test(value),
      defaultMessage: (args?: ValidationArguments) => message(args?.value),
    },
  });

/** A whole number above 0 (at most `max`): counts and millisecond timeouts. */
export const IsPositiveInteger = (max = Number.MAX_SAFE_INTEGER) =>
  Rule(
    'isPositiveInteger',
    (v) => Number.isInteger(v) && (v as number) > 0 && (v as number) <= max,
    (v) => SessionMessages.positiveInteger(PATH, v),
  );

export const IsDuration = (min = 1) =>
  Rule(
    'isDuration',
    (v) => parseDuration(v, min) !== undefined,
    (v) => SessionMessages.duration(PATH, v),
  );

/** The rules of a cookie's name, path and domain, for every cookie the options name (the module's, express-session's). */
export const IsCookieName = () =>
  applyDecorators(
    IsOptional(),
    Matches(
      COOKIE_NAME,
      message((v) => SessionMessages.cookieName(PATH, v)),
    ),
  );
export const IsCookiePath = () =>
  applyDecorators(
    IsOptional(),
    Matches(
      /^\//,
      message((v) => SessionMessages.cookiePath(PATH, v)),
    ),
  );
export const IsCookieDomain = () =>
  applyDecorators(
    IsOptional(),
    IsString(message((v) => SessionMessages.nonEmptyString(PATH, v))),
    MinLength(
      1,
      message((v) => SessionMessages.nonEmptyString(PATH, v)),
    ),
  );

/** class-validator's `{ message }` option, built from the value. */
export const message = (build: (value: unknown) => string) => ({ message: (args: ValidationArguments) => build(args.value) });

export function isPlainObject(value: unknown): value is Record<string, any> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Copies user options onto an options class instance for validation. Prototype keys are
 * reported as unknown options rather than copied, where they would replace the instance's
 * prototype and leave class-validator nothing to check.
 */
export function copyOptions<T extends object>(target: T, source: Record<string, unknown>, prefix: string, problems: string[]): T {
  for (const key of Object.keys(source)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') problems.push(SessionMessages.unknownOption(prefix + key));
    else Object.defineProperty(target, key, { value: source[key], enumerable: true, writable: true, configurable: true });
  }
  return target;
}

/** class-validator errors as our messages, with `{path}` filled in and unknown keys named. */
export function problemsOf(target: object, prefix = ''): string[] {
  const errors: ValidationError[] = validateSync(target, { whitelist: true, forbidNonWhitelisted: true });
  return errors.flatMap((error) =>
    Object.entries(error.constraints ?? {}).map(([constraint, text]) =>
      constraint === 'whitelistValidation' ? SessionMessages.unknownOption(prefix + error.property) : text.split(PATH).join(prefix + error.property),
    ),
  );
}
