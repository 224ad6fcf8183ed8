// sessiond visualizer. Plain ES module, no dependencies: it is served by the daemon and works offline.
// The statechart is laid out from GET /api/machine (derived from the XState machine), never drawn by hand.
// Live: server-sent events from GET /api/events; a reconnect re-reads everything, so nothing is missed.

const SVG = 'http://www.w3.org/2000/svg';

const state = {
  machine: null,
  /** @type {Map<string, any>} session views by id, as last seen */
  sessions: new Map(),
  selected: decodeURIComponent(location.hash.replace(/^#/, '')) || null,
  detail: null,
  filters: { status: '', kind: '' },
};

// ---------- tiny DOM helpers (textContent only: session data never becomes markup) ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(c === undefined || c === null ? '' : String(c)));
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

async function getJson(url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error ? `${body.error.code}: ${body.error.message}` : `${res.status} ${res.statusText}`);
  return body;
}

// ---------- statechart layout from the machine definition ----------

/**
 * Layered layout: a state's column is its shortest distance (in transitions) from the initial state;
 * final states go in a column after every other state. Parallel transitions between two states are one
 * edge with their event names joined. Edges forward curve above, edges backward curve below.
 */
function layout(machine) {
  const top = machine.states.filter((st) => !st.id.includes('.'));
  const byId = new Map(top.map((st) => [st.id, st]));
  const dist = new Map([[machine.initial, 0]]);
  const queue = [machine.initial];
  while (queue.length) {
    const cur = queue.shift();
    for (const t of byId.get(cur)?.transitions ?? []) {
      for (const target of t.targets) {
        const key = target.split('.')[0];
        if (!dist.has(key)) {
          dist.set(key, dist.get(cur) + 1);
          queue.push(key);
        }
      }
    }
  }
  let maxCol = 0;
  for (const st of top) if (!st.final && dist.has(st.id)) maxCol = Math.max(maxCol, dist.get(st.id));
  const col = new Map();
  for (const st of top) col.set(st.id, st.final ? maxCol + 1 : (dist.get(st.id) ?? maxCol + 1));
  const columns = new Map();
  for (const st of top) {
    const c = col.get(st.id);
    if (!columns.has(c)) columns.set(c, []);
    columns.get(c).push(st.id);
  }
  const W = 120, H = 46, GAPX = 90, GAPY = 50, PADX = 60, PADY = 130;
  const nCols = Math.max(...columns.keys()) + 1;
  const maxRows = Math.max(...[...columns.values()].map((c) => c.length));
  const nodes = new Map();
  for (const [c, ids] of columns) {
    ids.forEach((id, row) => {
      const offset = ((maxRows - ids.length) * (H + GAPY)) / 2;
      nodes.set(id, { id, x: PADX + c * (W + GAPX), y: PADY + offset + row * (H + GAPY), w: W, h: H, final: byId.get(id).final });
    });
  }
  const edges = new Map();
  for (const t of machine.transitions) {
    const from = t.source.split('.')[0];
    for (const target of t.targets.length ? t.targets : [t.source]) {
      const to = target.split('.')[0];
      const key = `${from}->${to}`;
      if (!edges.has(key)) edges.set(key, { from, to, events: [] });
      if (!edges.get(key).events.includes(t.event)) edges.get(key).events.push(t.event);
    }
  }
  const width = PADX * 2 + nCols * W + (nCols - 1) * GAPX;
  const height = PADY * 2 + maxRows * H + (maxRows - 1) * GAPY;
  return { nodes, edges: [...edges.values()], width, height, col };
}

/** Where the segment from the rectangle's centre towards (px, py) leaves the rectangle. */
function clip(node, px, py) {
  const cx = node.x + node.w / 2, cy = node.y + node.h / 2;
  const dx = px - cx, dy = py - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const sx = dx === 0 ? Infinity : node.w / 2 / Math.abs(dx);
  const sy = dy === 0 ? Infinity : node.h / 2 / Math.abs(dy);
  const k = Math.min(sx, sy);
  return [cx + dx * k, cy + dy * k];
}

function drawChart() {
  const el = document.getElementById('chart');
  const m = state.machine;
  if (!m) return;
  const L = layout(m);
  const current = state.detail?.session?.status ?? null;
  const last = state.detail?.history?.at(-1);
  const counts = new Map();
  for (const v of state.sessions.values()) counts.set(v.status, (counts.get(v.status) ?? 0) + 1);
  const available = new Set(current ? m.transitions.filter((t) => t.source === current).flatMap((t) => t.targets.map((x) => `${t.source}->${x}`)) : []);

  const svg = s('svg', { viewBox: `0 0 ${L.width} ${L.height}`, xmlns: SVG, 'data-machine': m.id });
  svg.append(
    s('defs', {},
      // userSpaceOnUse: the arrowhead keeps its size whatever the edge's stroke width.
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z' })),
      s('marker', { id: 'arrow-last', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 12, markerHeight: 12, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z' })),
    ),
  );

  for (const e of L.edges) {
    const a = L.nodes.get(e.from), b = L.nodes.get(e.to);
    if (!a || !b) continue;
    const isLast = last && last.from === e.from && last.to === e.to && e.events.includes(last.event);
    const cls = ['edge', isLast ? 'last' : '', current ? (available.has(`${e.from}->${e.to}`) ? 'available' : 'unavailable') : ''].join(' ').trim();
    const g = s('g', { class: cls, 'data-from': e.from, 'data-to': e.to, 'data-events': e.events.join(' ') });
    const label = e.events.join(' / ');
    if (e.from === e.to) {
      // A self-transition: a loop above the state.
      const x = a.x + a.w / 2, y = a.y;
      g.append(s('path', { d: `M${x - 14},${y} C${x - 30},${y - 50} ${x + 30},${y - 50} ${x + 14},${y}`, 'marker-end': `url(#${isLast ? 'arrow-last' : 'arrow'})` }));
      g.append(s('text', { x, y: y - 44 }, label));
      svg.append(g);
      continue;
    }
    const ca = [a.x + a.w / 2, a.y + a.h / 2], cb = [b.x + b.w / 2, b.y + b.h / 2];
    const span = Math.abs(L.col.get(e.to) - L.col.get(e.from));
    const forward = L.col.get(e.to) >= L.col.get(e.from);
    const hasReverse = L.edges.some((o) => o.from === e.to && o.to === e.from);
    // Forward edges bow upwards, backward ones downwards; longer jumps bow further so labels never collide.
    const bow = (span <= 1 && !hasReverse ? 0 : 28) + Math.max(0, span - 1) * 42;
    const dx = cb[0] - ca[0], dy = cb[1] - ca[1];
    const len = Math.hypot(dx, dy) || 1;
    let nx = -dy / len, ny = dx / len;
    if (ny > 0 === forward) { nx = -nx; ny = -ny; }
    const mx = (ca[0] + cb[0]) / 2 + nx * bow * 2, my = (ca[1] + cb[1]) / 2 + ny * bow * 2;
    const p0 = clip(a, mx, my), p2 = clip(b, mx, my);
    g.append(s('path', { d: `M${p0[0]},${p0[1]} Q${mx},${my} ${p2[0]},${p2[1]}`, 'marker-end': `url(#${isLast ? 'arrow-last' : 'arrow'})` }));
    const lx = 0.25 * p0[0] + 0.5 * mx + 0.25 * p2[0], ly = 0.25 * p0[1] + 0.5 * my + 0.25 * p2[1];
    g.append(s('text', { x: lx, y: ly + (bow === 0 ? -8 : forward ? -6 : 14) }, label));
    svg.append(g);
  }

  const init = L.nodes.get(m.initial);
  if (init) {
    const y = init.y + init.h / 2;
    svg.append(s('g', { class: 'initial' }, s('circle', { cx: init.x - 40, cy: y, r: 6 }), s('path', { d: `M${init.x - 34},${y} L${init.x - 2},${y}`, 'marker-end': 'url(#arrow)' })));
  }

  for (const n of L.nodes.values()) {
    const cls = ['state', n.final ? 'final' : '', n.id === current ? 'current' : ''].join(' ').trim();
    const g = s('g', { class: cls, 'data-state': n.id });
    g.append(s('rect', { class: 'outer', x: n.x, y: n.y, width: n.w, height: n.h, rx: 10 }));
    if (n.final) g.append(s('rect', { class: 'inner', x: n.x + 4, y: n.y + 4, width: n.w - 8, height: n.h - 8, rx: 7 }));
    g.append(s('text', { class: 'name', x: n.x + n.w / 2, y: n.y + n.h / 2 }, n.id));
    const c = counts.get(n.id) ?? 0;
    g.append(s('g', { class: 'badge' }, s('title', {}, `${c} session(s) listed in ${n.id}`), s('circle', { cx: n.x + n.w - 2, cy: n.y + 2, r: 11 }), s('text', { x: n.x + n.w - 2, y: n.y + 2 }, String(c))));
    svg.append(g);
  }
  el.replaceChildren(svg);
  // Fit the view to what was drawn (arcs reach above and below the states by varying amounts).
  try {
    const bb = svg.getBBox();
    if (bb.width > 0) svg.setAttribute('viewBox', `${bb.x - 12} ${bb.y - 12} ${bb.width + 24} ${bb.height + 24}`);
  } catch {
    // not rendered (hidden): keep the computed box
  }
}

// ---------- session list ----------

function matchesFilters(v) {
  return (!state.filters.status || v.status === state.filters.status) && (!state.filters.kind || v.kind === state.filters.kind);
}

function drawList() {
  const tbody = document.querySelector('#sessions tbody');
  const rows = [...state.sessions.values()].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0));
  tbody.replaceChildren(
    ...rows.map((v) =>
      h('tr', { 'data-session-id': v.id, class: v.id === state.selected ? 'selected' : '', onclick: () => select(v.id) },
        h('td', { class: 'id' }, v.id),
        h('td', {}, v.kind),
        h('td', { class: `status status-${v.status}` }, v.status),
        h('td', {}, v.strategyName ?? v.strategyId),
        h('td', { class: 'muted' }, time(v.updatedAt)),
      ),
    ),
  );
  document.getElementById('empty').hidden = rows.length > 0;
  document.getElementById('count').textContent = `${rows.length} session${rows.length === 1 ? '' : 's'}`;
}

async function loadList() {
  const q = new URLSearchParams();
  if (state.filters.status) q.set('status', state.filters.status);
  if (state.filters.kind) q.set('kind', state.filters.kind);
  const { sessions } = await getJson(`/api/sessions${q.size ? `?${q}` : ''}`);
  state.sessions = new Map(sessions.map((v) => [v.id, v]));
  if (!state.selected && sessions.length) state.selected = sessions[0].id;
  drawList();
}

// ---------- one session ----------

function drawDetail() {
  const d = state.detail;
  const title = document.getElementById('detail-title');
  const facts = document.getElementById('facts');
  const hist = document.querySelector('#history tbody');
  if (!d) {
    title.textContent = 'Session statechart';
    facts.replaceChildren();
    hist.replaceChildren();
    drawChart();
    return;
  }
  const v = d.session;
  title.replaceChildren('Session ', h('span', { class: 'id', id: 'selected-id' }, v.id), ' is ', h('span', { id: 'current-state', class: `status status-${v.status}`, 'data-state': v.status }, v.status));
  const fact = (k, val) => (val === undefined || val === null || val === '' ? [] : [h('dt', {}, k), h('dd', {}, val)]);
  facts.replaceChildren(
    ...fact('kind', v.kind),
    ...fact('strategy', `${v.strategyName ?? ''} (${v.strategyId})`),
    ...fact('broker / account', `${v.brokerId} / ${v.accountId}`),
    ...fact('symbols', (v.symbols ?? []).join(', ')),
    ...fact('execution', v.executionMode),
    ...fact('risk controls', Object.entries(v.riskControls ?? {}).map(([k, x]) => `${k}=${x}`).join(', ')),
    ...fact('created', time(v.createdAt)),
    ...fact('started', time(v.startedAt)),
    ...fact('stopped', time(v.stoppedAt)),
    ...fact('stop reason', v.stopReason),
  );
  hist.replaceChildren(
    ...[...d.history].reverse().map((t) =>
      h('tr', { 'data-seq': t.seq },
        h('td', { class: 'muted' }, time(t.at)),
        h('td', {}, `${t.from ?? '∅'} → ${t.to}`),
        h('td', {}, t.event),
        h('td', {}, t.source),
        h('td', { class: 'id' }, t.commandId ?? ''),
        h('td', {}, t.reason ?? ''),
      ),
    ),
  );
  drawChart();
}

function drawTrading(orders, positions) {
  document.querySelector('#positions tbody').replaceChildren(
    ...positions.map((p) => h('tr', {}, h('td', {}, p.symbol), h('td', {}, p.qty), h('td', {}, p.avgPrice), h('td', {}, p.lastPrice), h('td', {}, p.realizedPnl), h('td', {}, p.unrealizedPnl))),
  );
  const recent = orders.slice(-50).reverse();
  document.getElementById('orders-count').textContent = orders.length > recent.length ? `(latest ${recent.length} of ${orders.length})` : `(${orders.length})`;
  document.querySelector('#orders tbody').replaceChildren(
    ...recent.map((o) => h('tr', {}, h('td', { class: 'muted' }, time(o.createdAt)), h('td', {}, o.symbol), h('td', {}, o.side), h('td', {}, o.qty), h('td', {}, o.type), h('td', {}, o.status), h('td', {}, o.filledQty), h('td', {}, o.reason ?? ''))),
  );
}

let detailSeq = 0;
async function loadDetail() {
  const id = state.selected;
  const seq = ++detailSeq;
  if (!id) {
    state.detail = null;
    drawDetail();
    return;
  }
  try {
    const d = await getJson(`/api/sessions/${encodeURIComponent(id)}`);
    if (seq !== detailSeq) return; // a newer selection or event won
    state.detail = d;
    drawDetail();
    const [{ orders }, { positions }] = await Promise.all([
      getJson(`/api/sessions/${encodeURIComponent(id)}/orders`),
      getJson(`/api/sessions/${encodeURIComponent(id)}/positions`),
    ]);
    if (seq === detailSeq) drawTrading(orders, positions);
  } catch (err) {
    if (seq !== detailSeq) return;
    state.detail = null;
    drawDetail();
    document.getElementById('detail-title').textContent = `Session ${id}: ${err.message}`;
  }
}

function select(id) {
  state.selected = id;
  history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  drawList();
  void loadDetail();
}

// ---------- live updates ----------

function onTransition(ev) {
  const v = ev.session;
  if (matchesFilters(v)) state.sessions.set(v.id, v);
  else state.sessions.delete(v.id);
  if (!state.selected) state.selected = v.id;
  drawList();
  if (v.id === state.selected) {
    if (state.detail && state.detail.session.id === v.id) {
      // Apply at once from the event, then re-read for orders/positions.
      state.detail = { ...state.detail, session: v, state: v.status, history: [...state.detail.history.filter((t) => t.seq !== ev.transition.seq), ev.transition] };
      drawDetail();
    }
    void loadDetail();
  } else {
    drawChart(); // the per-state counts changed
  }
}

function connect() {
  const badge = document.getElementById('live');
  const es = new EventSource('/api/events');
  es.addEventListener('hello', () => {
    badge.textContent = 'live';
    badge.className = 'live on';
    // (Re)connected: whatever happened while we were away is read afresh.
    void loadList().then(loadDetail).catch(showError);
  });
  es.addEventListener('transition', (e) => onTransition(JSON.parse(e.data)));
  es.addEventListener('error', () => {
    badge.textContent = 'reconnecting…';
    badge.className = 'live off';
  });
}

function showError(err) {
  document.getElementById('detail-hint').textContent = String(err.message ?? err);
}

async function init() {
  const form = document.getElementById('filters');
  form.addEventListener('change', () => {
    state.filters.status = form.elements.status.value;
    state.filters.kind = form.elements.kind.value;
    void loadList().then(drawChart).catch(showError);
  });
  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.replace(/^#/, ''));
    if (id && id !== state.selected) select(id);
  });
  state.machine = await getJson('/api/machine');
  drawChart();
  connect();
}

init().catch(showError);
