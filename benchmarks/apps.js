// The three kinds of NestJS application the benchmark compares, with identical routes:
//
//   POST /login?u=NNNNNN  signs in: sets userId and visits = 0 (a two-field session); with
//                         &fields=N (N > 2), also N − 2 filler fields (the growth pass's sizes)
//   GET  /read            returns the session's userId (read-only)
//   POST /change          increments visits (one field changes)
//   GET  /none            does not touch the session (the no-credential workload)
//   PUT  /field/:name     sets one more field `f_<name>` (the lost-update demonstration)
//   GET  /fields          the session's data (to count what survived the demonstration)
//
// Plain JavaScript: the decorators are applied with Reflect.decorate instead of @ syntax.
import 'reflect-metadata';
import { Controller, Get, HttpCode, Module, Param, Post, Put, Query, Req } from '@nestjs/common';

/** The secret every server signs its cookies with; the growth pass signs its own sessions' too. */
export const SECRET = 'benchmark-secret-0123456789abcdefghijklmnop';

/**
 * `total − 2` filler fields beside userId and visits, each a 20-character string: a session of
 * `total` top-level fields. Nothing for a missing or non-numeric `total` (a plain sign-in).
 */
export function fillerFields(total) {
  const count = Math.max(0, Number(total) - 2 || 0);
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`pad_${i}`, `filler-value-${String(i).padStart(7, '0')}`]));
}

/** Decorates `Cls` as a controller; `routes` maps method name → [method decorators, param decorators]. */
function controller(Cls, routes) {
  for (const [method, [decorators, params = []]] of Object.entries(routes)) {
    params.forEach((decorate, index) => decorate(Cls.prototype, method, index));
    const descriptor = Object.getOwnPropertyDescriptor(Cls.prototype, method);
    Object.defineProperty(Cls.prototype, method, Reflect.decorate(decorators, Cls.prototype, method, descriptor) ?? descriptor);
  }
  Reflect.decorate([Controller()], Cls);
  return Cls;
}

function module(metadata) {
  class BenchModule {}
  Reflect.decorate([Module(metadata)], BenchModule);
  return BenchModule;
}

const ROUTES = {
  login: [Post('login'), HttpCode(200)],
  read: [Get('read')],
  change: [Post('change'), HttpCode(200)],
  none: [Get('none')],
  setField: [Put('field/:name')],
  fields: [Get('fields')],
};

/** Binds the route table with the parameter decorators one kind of app needs. */
function bind(Cls, params) {
  return controller(Cls, Object.fromEntries(Object.entries(ROUTES).map(([method, decorators]) => [method, [decorators, params[method]]])));
}

// ---- 1. baseline: no session at all --------------------------------------------------------

class BaselineController {
  login() {
    return { ok: true };
  }
  read() {
    return { userId: 'user-000000' };
  }
  change() {
    return { visits: 1 };
  }
  none() {
    return { ok: true };
  }
  setField() {
    return { ok: true };
  }
  fields() {
    return {};
  }
}

/**
 * The floor any session middleware starts from: the baseline app with one middleware that only
 * calls next(), registered with app.use() as express-session is. What it costs against the
 * baseline is what mounting a middleware costs, before it does anything.
 */
export function noopMiddleware(req, res, next) {
  next();
}

export function baselineModule() {
  return module({ controllers: [bind(BaselineController, {})] });
}

// ---- 2. express-session (anchors): app.use(session(...)), handlers use req.session ---------

class ExpressSessionController {
  login(req, u, fields) {
    req.session.userId = `user-${u}`;
    req.session.visits = 0;
    Object.assign(req.session, fillerFields(fields));
    return { ok: true };
  }
  read(req) {
    return { userId: req.session.userId };
  }
  change(req) {
    req.session.visits = (req.session.visits ?? 0) + 1;
    return { visits: req.session.visits };
  }
  none() {
    return { ok: true };
  }
  setField(req, name) {
    req.session[`f_${name}`] = 1;
    return { ok: true };
  }
  fields(req) {
    const { cookie: _cookie, ...data } = req.session;
    return data;
  }
}

export function expressSessionModule() {
  return module({
    controllers: [
      bind(ExpressSessionController, {
        login: [Req(), Query('u'), Query('fields')],
        read: [Req()],
        change: [Req()],
        setField: [Req(), Param('name')],
        fields: [Req()],
      }),
    ],
  });
}

// ---- 3. ours: SessionModule.forRoot(...), handlers use @Session() --------------------------

export function oursModule({ SessionModule, Session }, options) {
  class OursController {
    login(session, u, fields) {
      session.userId = `user-${u}`;
      session.visits = 0;
      Object.assign(session, fillerFields(fields));
      return { ok: true };
    }
    read(session) {
      return { userId: session.userId };
    }
    change(session) {
      session.visits = (session.visits ?? 0) + 1;
      return { visits: session.visits };
    }
    none() {
      return { ok: true };
    }
    setField(session, name) {
      session[`f_${name}`] = 1;
      return { ok: true };
    }
    fields(session) {
      return session.toJSON();
    }
  }
  return module({
    imports: [SessionModule.forRoot(options)],
    controllers: [
      bind(OursController, {
        login: [Session(), Query('u'), Query('fields')],
        read: [Session()],
        change: [Session()],
        setField: [Session(), Param('name')],
        fields: [Session()],
      }),
    ],
  });
}
