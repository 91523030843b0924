import { applyDecorators, Controller, Get, Header } from '@nestjs/common';
import { PAGE_HTML } from './sign-in-page/page-html.js';
import { PAGE_SCRIPT } from './sign-in-page/page-script.js';
import { PAGE_STYLE } from './sign-in-page/page-style.js';

/**
 * The page's Content-Security-Policy: script and style from this server only (no inline code,
 * no eval), requests to this server only, and no framing (clickjacking on a sign-in form).
 * `img-src data:` is for the empty inline favicon, which spares a 404 per page load.
 */
export const SIGN_IN_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every file the page is made of; `no-cache` so that a rebuilt sample is seen at once. */
const PageFile = (contentType: string) =>
  applyDecorators(
    Header('Content-Type', `${contentType}; charset=utf-8`),
    Header('X-Content-Type-Options', 'nosniff'),
    Header('Cache-Control', 'no-cache'),
  );

/**
 * A sign-in page for trying the sample in a browser, on any number of nodes: sign in, count
 * visits, list and revoke your sessions, sign out. It only calls the JSON routes of SPEC §4, and
 * is served from memory by this controller so that it works the same on Express and Fastify and
 * from the compiled sample (`dist/sample/`), with no static-file middleware.
 */
@Controller()
export class SignInPageController {
  @Get()
  @PageFile('text/html')
  @Header('Content-Security-Policy', SIGN_IN_PAGE_CSP)
  @Header('Referrer-Policy', 'no-referrer')
  page(): string {
    return PAGE_HTML;
  }

  @Get('app.js')
  @PageFile('text/javascript')
  script(): string {
    return PAGE_SCRIPT;
  }

  @Get('app.css')
  @PageFile('text/css')
  style(): string {
    return PAGE_STYLE;
  }
}
