// The three kinds of NestJS application the benchmark compares, with identical routes:
//
//   POST /login?u=NNNNNN  signs in: sets userId and visits = 0 (a two-field session)
//   GET  /read            returns the session's userId (read-only)
//   POST /change          increments visits (one field changes)
//   GET  /none            does not touch the session (the no-credential workload)
//   PUT  /field/:name     sets one more field `f_<name>` (the lost-update demonstration)
//   GET  /fields          the session's data (to count what survived the demonstration)
//
// Plain JavaScript: the decorators are applied with Reflect.decorate instead of @ syntax.
import 'reflect-metadata';
import { Controller, Get, HttpCode, Module, Param, Post, Put, Query, Req } from '@nestjs/common';

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

export function baselineModule() {
  return module({ controllers: [bind(BaselineController, {})] });
}

// ---- 2. express-session (anchors): app.use(session(...)), handlers use req.session ---------

class ExpressSessionController {
  login(req, u) {
    req.session.userId = `user-${u}`;
    req.session.visits = 0;
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
        login: [Req(), Query('u')],
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
    login(session, u) {
      session.userId = `user-${u}`;
      session.visits = 0;
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
        login: [Session(), Query('u')],
        read: [Session()],
        change: [Session()],
        setField: [Session(), Param('name')],
        fields: [Session()],
      }),
    ],
  });
}
