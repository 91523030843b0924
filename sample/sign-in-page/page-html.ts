/**
 * The sign-in page's markup. It carries no inline script or style, so that its
 * Content-Security-Policy can allow scripts and styles from the server only ('self').
 * Kept as a string in a TS module (like its script and style) so that the page is served the
 * same from `sample/` (ts-jest) and from `dist/sample/` (tsc copies no .html files).
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>nestjs-session-sync: sign-in demo</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/app.css">
  <script src="/app.js" defer></script>
</head>
<body>
  <main>
    <h1>nestjs-session-sync</h1>
    <p class="hint">Server-side sessions across nodes. Sign in with any user name and the password <code>demo</code>,
      then open this page in a second browser (or a private window) and sign in as the same user.</p>

    <p id="message" role="status"></p>

    <section id="signed-out" hidden>
      <h2>Sign in</h2>
      <form id="sign-in-form">
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required maxlength="100">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="200">
        <button type="submit">Sign in</button>
      </form>
    </section>

    <section id="signed-in" hidden>
      <h2>Profile</h2>
      <dl>
        <dt>User id</dt><dd id="user-id"></dd>
        <dt>Visits in this session</dt><dd id="visits"></dd>
      </dl>
      <div class="actions">
        <button type="button" id="count-visit">Count a visit</button>
        <button type="button" id="sign-out">Sign out</button>
      </div>

      <h2>Your sessions</h2>
      <table>
        <thead><tr><th>Session</th><th>Signed in</th><th>Last seen</th><th>Client</th><th></th></tr></thead>
        <tbody id="sessions"></tbody>
      </table>
      <div class="actions">
        <button type="button" id="refresh-sessions">Refresh</button>
        <button type="button" id="revoke-others">Sign out all other sessions</button>
      </div>
    </section>

    <h2>Requests</h2>
    <p class="hint">Each answer names the node that served it: the <code>X-Served-By</code> header of the cluster
      demo's proxy, or else the address this page was loaded from.</p>
    <ol id="requests" reversed></ol>
  </main>
</body>
</html>
`;
