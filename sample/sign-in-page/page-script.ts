/**
 * The sign-in page's script, served as `/app.js`: plain browser JavaScript that calls the
 * sample's JSON routes (SPEC §4) with `fetch`. The session cookie is HttpOnly, so the script never
 * sees it; the browser sends it with every same-origin request.
 *
 * Written without template literals, so that it can live in this template literal as it is.
 */
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  const byId = (id) => document.getElementById(id);
  const ENDED = 'Your session has ended: it was signed out here or revoked from another session.';
  const KEPT_REQUESTS = 12;

  /** Shows a line above the page; errors in red. */
  function say(text, isError) {
    const message = byId('message');
    message.textContent = text || '';
    message.className = isError ? 'error' : '';
  }

  /** Adds a line to the request log: what was asked, the status, and the node that answered. */
  function logRequest(method, path, status, servedBy) {
    const item = document.createElement('li');
    item.textContent = method + ' ' + path + ' \u2192 ' + status + (servedBy ? ' \u00b7 served by ' + servedBy : '');
    const list = byId('requests');
    list.insertBefore(item, list.firstChild);
    while (list.children.length > KEPT_REQUESTS) list.removeChild(list.lastChild);
  }

  /** The message of a Nest error body ({ message: string | string[] }), or a fallback. */
  function errorText(body, fallback) {
    if (body && Array.isArray(body.message)) return body.message.join('; ');
    if (body && typeof body.message === 'string') return body.message;
    return fallback;
  }

  /** Calls one JSON route; resolves with { status, ok, body } whatever the status. */
  async function call(method, path, body) {
    const init = { method: method, headers: { Accept: 'application/json' } };
    // No Content-Type without a body: Fastify refuses an empty JSON body.
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      logRequest(method, path, 'network error', '');
      throw error;
    }
    logRequest(method, path, response.status, response.headers.get('X-Served-By') || location.host);
    const text = await response.text();
    let parsed;
    try { parsed = text ? JSON.parse(text) : undefined; } catch (error) { parsed = undefined; }
    return { status: response.status, ok: response.ok, body: parsed };
  }

  function showSignedOut(text, isError) {
    byId('signed-in').hidden = true;
    byId('signed-out').hidden = false;
    byId('sessions').replaceChildren();
    say(text, isError);
  }

  /** A guarded route answered 401: the session is gone (signed out, revoked, expired). */
  function ended() {
    showSignedOut(ENDED, true);
  }

  async function showSignedIn(userId) {
    byId('signed-out').hidden = true;
    byId('signed-in').hidden = false;
    byId('user-id').textContent = userId;
    const session = await call('GET', '/session');
    byId('visits').textContent = String((session.body && session.body.data && session.body.data.visits) || 0);
    await loadSessions();
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function when(iso) {
    return new Date(iso).toLocaleString();
  }

  function sessionRow(session) {
    const row = document.createElement('tr');
    row.dataset.sessionId = session.id;
    row.dataset.current = String(session.current);
    cell(row, session.id.slice(0, 12) + '\u2026', 'id').title = session.id;
    cell(row, when(session.createdAt));
    cell(row, when(session.lastSeenAt));
    cell(row, [session.userAgent, session.ip].filter(Boolean).join(' \u00b7 ') || '\u2014');
    const action = cell(row, '');
    if (session.current) {
      action.textContent = 'this browser';
      action.className = 'current';
    } else {
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.textContent = 'Revoke';
      revoke.addEventListener('click', guarded(function () { return revokeOne(session.id); }));
      action.appendChild(revoke);
    }
    return row;
  }

  async function loadSessions() {
    const answer = await call('GET', '/auth/sessions');
    if (answer.status === 401) return ended();
    if (!answer.ok) return say(errorText(answer.body, 'Could not list your sessions (' + answer.status + ').'), true);
    byId('sessions').replaceChildren(...answer.body.map(sessionRow));
  }

  async function revokeOne(id) {
    const answer = await call('DELETE', '/auth/sessions/' + encodeURIComponent(id));
    if (answer.status === 401) return ended();
    if (answer.ok) say('Revoked one session: it is signed out on its next request.');
    else say(errorText(answer.body, 'Could not revoke that session (' + answer.status + ').'), true);
    await loadSessions();
  }

  async function revokeOthers() {
    const answer = await call('DELETE', '/auth/sessions');
    if (answer.status === 401) return ended();
    if (answer.ok) say('Signed out ' + answer.body.revoked + ' other session(s).');
    else say(errorText(answer.body, 'Could not revoke your other sessions (' + answer.status + ').'), true);
    await loadSessions();
  }

  async function signIn(event) {
    event.preventDefault();
    const form = event.target;
    const fields = form.elements;
    const answer = await call('POST', '/auth/login', { username: fields.username.value, password: fields.password.value });
    fields.password.value = '';
    if (answer.status === 401) return say('Wrong user name or password (the demo password is "demo").', true);
    if (!answer.ok) return say(errorText(answer.body, 'Sign-in failed (' + answer.status + ').'), true);
    say('Signed in as ' + answer.body.userId + '.');
    await showSignedIn(answer.body.userId);
  }

  async function countVisit() {
    const answer = await call('POST', '/visits');
    if (!answer.ok) return say(errorText(answer.body, 'Could not count the visit (' + answer.status + ').'), true);
    byId('visits').textContent = String(answer.body.visits);
  }

  async function signOut() {
    const answer = await call('POST', '/auth/logout');
    if (!answer.ok) return say(errorText(answer.body, 'Sign-out failed (' + answer.status + ').'), true);
    showSignedOut('Signed out.');
  }

  /** Asks the server who is signed in, and shows the matching view. */
  async function start() {
    const answer = await call('GET', '/profile');
    if (answer.ok) return showSignedIn(answer.body.userId);
    if (answer.status === 401) return showSignedOut('');
    showSignedOut(errorText(answer.body, 'The server answered ' + answer.status + '.'), true);
  }

  /** Runs a handler, showing a failure (a network error, a node down) instead of losing it. */
  function guarded(handler) {
    return function (event) {
      handler(event).catch(function (error) { say('Request failed: ' + error.message, true); });
    };
  }

  byId('sign-in-form').addEventListener('submit', guarded(signIn));
  byId('count-visit').addEventListener('click', guarded(countVisit));
  byId('sign-out').addEventListener('click', guarded(signOut));
  byId('refresh-sessions').addEventListener('click', guarded(loadSessions));
  byId('revoke-others').addEventListener('click', guarded(revokeOthers));
  guarded(start)();
})();
`;
