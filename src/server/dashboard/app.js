// redis-dcp operator dashboard (README "Dashboard"): a client of the admin API on the same
// origin. The bearer token is typed once into the header form and kept in sessionStorage,
// never in a URL. Data is put into the page with textContent only.
const TOKEN_KEY = 'redis-dcp-admin-token';
const STATES = ['committed', 'writing', 'incomplete'];
const main = document.getElementById('main');
const notice = document.getElementById('notice');
const list = { prefix: '', state: '', cursors: [''], page: 0 };
/** A message for the next view (e.g. "Deleted …" after navigating back to the list). */
let flash = '';

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path) {
  const headers = { accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers });
  if (res.status === 204) return null;
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body?.message ?? res.statusText, body?.code);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

function showNotice(text, kind = 'error') {
  notice.textContent = text;
  notice.className = kind === 'info' ? 'info' : '';
  notice.hidden = false;
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = '';
}

/** What a failed call means to an operator. */
function explain(err) {
  if (!(err instanceof ApiError)) return `Request failed: ${err.message}`;
  if (err.status === 401) return `401: ${err.message}. Enter the admin token above.`;
  if (err.status === 403) return `403: ${err.message}. Check the admin token above.`;
  return `${err.status} ${err.code ?? ''}: ${err.message}`;
}

function failed(err) {
  showNotice(explain(err));
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) document.getElementById('token').focus();
}

function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

const stateBadge = (state) => el('span', { class: `state state-${state}` }, state);
const checkpointHref = (id) => `#/checkpoint/${encodeURIComponent(id)}`;

function heading(text) {
  const h = el('h2', { tabindex: '-1' }, text);
  return h;
}

function render(...nodes) {
  main.replaceChildren(...nodes);
  main.querySelector('h2')?.focus();
}

// ---------------------------------------------------------------- checkpoints table

async function showList() {
  const prefix = el('input', { id: 'filter-prefix', name: 'prefix', value: list.prefix, placeholder: 'run1/', spellcheck: 'false' });
  const state = el('select', { id: 'filter-state', name: 'state' }, el('option', { value: '' }, 'any'), STATES.map((s) => el('option', { value: s, selected: s === list.state }, s)));
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter checkpoints', onsubmit: (e) => (e.preventDefault(), Object.assign(list, { prefix: prefix.value.trim(), state: state.value, cursors: [''], page: 0 }), showList()) },
    el('label', { for: 'filter-prefix' }, 'Id prefix', prefix),
    el('label', { for: 'filter-state' }, 'State', state),
    el('button', { type: 'submit', class: 'primary' }, 'Filter'),
  );
  const body = el('tbody');
  const table = el(
    'table',
    { id: 'checkpoints', 'aria-describedby': 'checkpoints-note' },
    el('thead', {}, el('tr', {}, ['Id', 'State', 'Step', 'Metrics', 'Logical', 'Stored', 'Ranks', 'Age'].map((h, i) => el('th', { scope: 'col', class: i === 2 || (i >= 4 && i <= 6) ? 'num' : undefined }, h)))),
    body,
  );
  const pager = el('div', { class: 'pager' });
  const note = el('p', { id: 'checkpoints-note', class: 'muted' }, 'Newest first. Sizes: logical (the state dict) and stored (what the save added to Redis).');
  render(heading('Checkpoints'), form, el('div', { class: 'table-wrap' }, table), pager, note);
  const query = new URLSearchParams({ limit: '25' });
  if (list.prefix) query.set('prefix', list.prefix);
  if (list.state) query.set('state', list.state);
  if (list.cursors[list.page]) query.set('cursor', list.cursors[list.page]);
  try {
    const page = await api('GET', `/checkpoints?${query}`);
    if (flash) showNotice(flash, 'info');
    else clearNotice();
    flash = '';
    for (const c of page.items) {
      const metrics = c.metrics ? Object.entries(c.metrics).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : +v.toPrecision(4)}`).join(', ') : '';
      body.append(
        el('tr', {}, el('td', { class: 'id' }, el('a', { href: checkpointHref(c.id) }, c.id)), el('td', {}, stateBadge(c.state)), el('td', { class: 'num' }, c.step ?? ''), el('td', {}, metrics), el('td', { class: 'num' }, bytes(c.totalBytes)), el('td', { class: 'num' }, bytes(c.storedBytes ?? c.totalBytes)), el('td', { class: 'num' }, c.worldSize), el('td', { title: c.createdAt }, age(c.createdAt))),
      );
    }
    if (page.items.length === 0) body.append(el('tr', {}, el('td', { colspan: '8', class: 'muted' }, 'No checkpoints match.')));
    const prev = el('button', { type: 'button', disabled: list.page === 0, onclick: () => (list.page--, showList()) }, 'Previous page');
    const next = el('button', { type: 'button', disabled: !page.nextCursor, onclick: () => ((list.cursors[list.page + 1] = page.nextCursor), list.page++, showList()) }, 'Next page');
    pager.append(prev, next, el('span', { class: 'muted' }, `Page ${list.page + 1}`));
  } catch (err) {
    failed(err);
  }
}

// ---------------------------------------------------------------- one checkpoint

function itemsTable(metadata) {
  const rows = Object.entries(metadata?.stateDictMetadata ?? {}).map(([fqn, md]) =>
    md.type === 'tensor'
      ? el('tr', {}, el('td', { class: 'id' }, fqn), el('td', {}, 'tensor'), el('td', {}, md.properties.dtype), el('td', {}, `[${md.size.join(', ')}]`), el('td', { class: 'num' }, md.chunks.length))
      : el('tr', {}, el('td', { class: 'id' }, fqn), el('td', {}, `bytes (${md.encoding})`), el('td', {}, '—'), el('td', {}, '—'), el('td', { class: 'num' }, '—')),
  );
  return el('div', { class: 'table-wrap' }, el('table', { id: 'items' }, el('thead', {}, el('tr', {}, ['FQN', 'Type', 'Dtype', 'Shape', 'Chunks'].map((h, i) => el('th', { scope: 'col', class: i === 4 ? 'num' : undefined }, h)))), el('tbody', {}, rows)));
}

async function showCheckpoint(id) {
  render(heading(id), el('p', { class: 'muted' }, 'Loading…'));
  let c;
  try {
    c = await api('GET', `/checkpoints/${encodeURIComponent(id)}`);
    clearNotice();
  } catch (err) {
    failed(err);
    render(heading(id), el('p', {}, el('a', { href: '#/' }, 'Back to the checkpoints')));
    return;
  }
  const report = el('div', { id: 'report', 'aria-live': 'polite' });
  const validate = async (deep) => {
    report.className = 'report';
    report.replaceChildren(deep ? 'Reading every byte and checking checksums…' : 'Checking every data key…');
    try {
      const r = await api('POST', `/checkpoints/${encodeURIComponent(id)}/validate?deep=${deep}`);
      clearNotice();
      report.className = `report ${r.ok ? 'ok' : 'bad'}`;
      if (r.ok) report.replaceChildren(`${deep ? 'Deep validation' : 'Validation'}: OK, no problems.`);
      else report.replaceChildren(el('strong', {}, `${deep ? 'Deep validation' : 'Validation'}: ${r.problems.length} problem(s)`), el('ul', {}, r.problems.map((p) => el('li', {}, el('code', {}, p.kind), p.fqn ? ` ${p.fqn}` : '', `: ${p.message}`))));
    } catch (err) {
      report.replaceChildren();
      failed(err);
    }
  };
  const summary = el(
    'dl',
    { class: 'summary' },
    [
      ['State', stateBadge(c.state)],
      ['Created', `${c.createdAt} (${age(c.createdAt)} ago)`],
      ['Committed', c.committedAt ?? '—'],
      ['Ranks', c.worldSize],
      ['Items', c.itemCount],
      ['Logical size', bytes(c.totalBytes)],
      ['Stored size', bytes(c.storedBytes ?? c.totalBytes)],
      ['Step', c.step ?? '—'],
      ['Metrics', c.metrics ? JSON.stringify(c.metrics) : '—'],
    ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
  );
  render(
    heading(id),
    el('p', {}, el('a', { href: '#/' }, '← All checkpoints')),
    summary,
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'button', onclick: () => validate(false) }, 'Validate'),
      el('button', { type: 'button', onclick: () => validate(true) }, 'Deep validate'),
      el('button', { type: 'button', class: 'danger', onclick: () => confirmDelete(id) }, 'Delete…'),
    ),
    report,
    el('h3', {}, 'Items'),
    c.metadata ? itemsTable(c.metadata) : el('p', { class: 'muted' }, 'No metadata: nothing is committed under this id.'),
  );
}

function confirmDelete(id) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = `Delete "${id}" and every key it holds? This cannot be undone.`;
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'delete') return;
    try {
      await api('DELETE', `/checkpoints/${encodeURIComponent(id)}`);
      flash = `Deleted ${id}.`;
      location.hash = '#/';
    } catch (err) {
      failed(err);
    }
  };
  dialog.showModal();
}

// ---------------------------------------------------------------- memory

function barRows(rows, max) {
  return el(
    'div',
    { class: 'bars' },
    rows.flatMap(({ label, parts, text }) => [
      el('span', { class: 'label' }, label),
      el('span', { class: 'bar', 'aria-hidden': 'true' }, parts.map(([n, cls]) => el('span', { class: cls, style: `width: ${max > 0 ? Math.min(100, (100 * n) / max).toFixed(2) : 0}%` }))),
      el('span', { class: 'value' }, text),
    ]),
  );
}

async function showMemory() {
  render(heading('Memory'), el('p', { class: 'muted' }, 'Loading…'));
  let u;
  try {
    u = await api('GET', '/usage?top=20');
    clearNotice();
  } catch (err) {
    failed(err);
    return;
  }
  const max = u.redis.maxMemory;
  const redisRows = [{ label: 'Redis used', parts: [[u.redis.usedMemory, '']], text: max ? `${bytes(u.redis.usedMemory)} of ${bytes(max)} (${((100 * u.redis.usedMemory) / max).toFixed(1)}%)` : `${bytes(u.redis.usedMemory)} (no maxmemory)` }];
  const stateRows = [
    { label: 'committed', parts: [[u.committed.bytes, '']], text: `${bytes(u.committed.bytes)} · ${u.committed.checkpoints}` },
    { label: 'writing', parts: [[u.writing.bytes, '']], text: `${bytes(u.writing.bytes)} · ${u.writing.checkpoints}` },
    { label: 'incomplete', parts: [[u.incomplete.bytes, 'incomplete']], text: `${bytes(u.incomplete.bytes)} · ${u.incomplete.checkpoints}` },
    { label: 'pooled', parts: [[u.pooled.bytes, 'pooled']], text: `${bytes(u.pooled.bytes)} · ${u.pooled.segments} seg.` },
  ];
  const stored = u.committed.bytes + u.writing.bytes + u.incomplete.bytes;
  const kindRows = [
    { label: 'logical', parts: [[u.logicalBytes, '']], text: bytes(u.logicalBytes) },
    { label: 'stored', parts: [[stored, '']], text: bytes(stored) },
    { label: 'pooled', parts: [[u.pooled.bytes, 'pooled']], text: bytes(u.pooled.bytes) },
  ];
  const stateMax = Math.max(1, ...stateRows.map((r) => r.parts[0][0]));
  const runMax = Math.max(1, ...u.runs.map((r) => r.committedBytes + r.incompleteBytes));
  const runRows = u.runs.map((r) => ({ label: r.prefix || '(no prefix)', parts: [[r.committedBytes, ''], [r.incompleteBytes, 'incomplete']], text: `${bytes(r.committedBytes + r.incompleteBytes)} · ${r.checkpoints}` }));
  render(
    heading('Memory'),
    el(
      'div',
      { class: 'cards' },
      el('section', { class: 'card', 'aria-labelledby': 'mem-redis' }, el('h3', { id: 'mem-redis' }, 'Redis memory'), barRows(redisRows, max || u.redis.usedMemory)),
      el('section', { class: 'card', 'aria-labelledby': 'mem-kind' }, el('h3', { id: 'mem-kind' }, 'Checkpoint bytes'), barRows(kindRows, Math.max(1, u.logicalBytes, stored, u.pooled.bytes))),
      el('section', { class: 'card', 'aria-labelledby': 'mem-state' }, el('h3', { id: 'mem-state' }, 'Stored bytes by state (· checkpoints)'), barRows(stateRows, stateMax)),
    ),
    el('section', { 'aria-labelledby': 'mem-runs' }, el('h3', { id: 'mem-runs' }, 'Bytes by run prefix (committed, incomplete · checkpoints)'), runRows.length ? barRows(runRows, runMax) : el('p', { class: 'muted' }, 'No checkpoints.')),
    el('p', { class: 'muted' }, 'The same numbers as GET /usage and the redis_dcp_checkpoint_bytes gauges of GET /metrics.'),
  );
}

// ---------------------------------------------------------------- token and routing

function tokenState() {
  document.getElementById('token-state').textContent = sessionStorage.getItem(TOKEN_KEY) ? 'token set for this tab' : 'no token';
}

function route() {
  const hash = location.hash || '#/';
  for (const a of document.querySelectorAll('nav a')) a.toggleAttribute('aria-current', a.getAttribute('href') === hash || (hash.startsWith('#/checkpoint/') && a.getAttribute('href') === '#/'));
  if (hash.startsWith('#/checkpoint/')) return showCheckpoint(decodeURIComponent(hash.slice('#/checkpoint/'.length)));
  if (hash === '#/memory') return showMemory();
  return showList();
}

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  tokenState();
  clearNotice();
  route();
});
document.getElementById('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenState();
  route();
});
window.addEventListener('hashchange', route);
tokenState();
route();
