/** The sign-in page's stylesheet, served as `/app.css` (the page's CSP allows no inline style). */
export const PAGE_STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 52rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
.hint { color: #5b6478; margin: 0.25rem 0; }
#message:empty { display: none; }
#message { padding: 0.5rem 0.75rem; border-radius: 4px; background: #e8eefc; }
#message.error { background: #fde8e8; color: #8a1c1c; }
form { display: grid; grid-template-columns: max-content 16rem; gap: 0.5rem 0.75rem; align-items: center; }
form button { grid-column: 2; justify-self: start; }
input { font: inherit; padding: 0.3rem 0.45rem; }
button { font: inherit; padding: 0.3rem 0.8rem; cursor: pointer; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.25rem 1rem; }
dt { color: #5b6478; }
dd { margin: 0; font-weight: 600; }
.actions { display: flex; gap: 0.5rem; margin: 0.5rem 0; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid #e1e4ea; vertical-align: top; }
td.id { font-family: ui-monospace, monospace; }
.current { color: #1d6b2f; font-weight: 600; }
#requests { font-family: ui-monospace, monospace; font-size: 0.85rem; color: #3b4252; padding-left: 2.5rem; }
`;
