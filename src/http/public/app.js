// sessiond visualizer. Plain ES module, no dependencies: it is served by the daemon and works offline.
// The statechart is laid out from GET /api/machine (derived from the XState machine), never drawn by hand.
// Live: server-sent events from GET /api/events; a reconnect re-reads everything, so nothing is missed.

const SVG = 'http://www.w3.org/2000/svg';

const state = {
  machine: null,
  /** @type {Map<string, any>} every session view by id, as last seen (the chart counts these) */
  all: new Map(),
  /** @type {Map<string, any>} the sessions the filters let through (the list shows these) */
  sessions: new Map(),
  /** Orders page: offset from the newest. */
  ordersOffset: 0,
  chartSymbol: null,
  /** Token for writes (only ever in this tab's sessionStorage); null: read-only. */
  token: sessionStorage.getItem('sessiond-token'),
  ui: { writable: false, tokenRequired: false },
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

const pad = (n, w = 2) => String(Math.trunc(Math.abs(n))).padStart(w, '0');

/** ISO-8601 in the browser's timezone, with its offset: 2026-12-01T21:30:05.120+01:00. */
function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? '+' : '-'}${pad(off / 60)}:${pad(off % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${zone}`;
}

/** A time cell's content: the ISO text, allowed to wrap only before its `T` (narrow columns). */
function when(iso) {
  const t = time(iso);
  const i = t.indexOf('T');
  return i < 0 ? [t] : [t.slice(0, i), h('wbr'), t.slice(i)];
}

/** An id cell's content: wraps only after a `:` or a `-` (never inside a run of digits). */
function idText(id) {
  const parts = String(id ?? '').split(/(?<=:)/);
  return parts.flatMap((p, i) => (i === 0 ? [p] : [h('wbr'), p]));
}

/** A status such as pending_approval, allowed to wrap after its underscore. */
function statusText(status) {
  const i = String(status).indexOf('_');
  return i < 0 ? [status] : [status.slice(0, i + 1), h('wbr'), status.slice(i + 1)];
}

/** Money: two decimals. */
function money(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : '';
}

/** Prices are money: two decimals; below 1 (a small coin), four significant digits so it is not 0.00. */
function price(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '';
  if (v === 0 || Math.abs(v) >= 1) return money(v);
  return String(Number(v.toPrecision(4)));
}

/** Quantities as the venue's step gives them: no float noise, at most 8 decimals (crypto lots), none added. */
function qty(v) {
  return typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toFixed(8))) : '';
}

function signClass(v) {
  return typeof v === 'number' && v > 0 ? 'num pos' : typeof v === 'number' && v < 0 ? 'num neg' : 'num';
}

async function getJson(url, init = {}) {
  const res = await fetch(url, { ...init, headers: { accept: 'application/json', ...(init.headers ?? {}) } });
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
  for (const v of state.all.values()) counts.set(v.status, (counts.get(v.status) ?? 0) + 1);
  const available = new Set(current ? m.transitions.filter((t) => t.source === current).flatMap((t) => t.targets.map((x) => `${t.source}->${x}`)) : []);

  const svg = s('svg', { viewBox: `0 0 ${L.width} ${L.height}`, xmlns: SVG, 'data-machine': m.id });
  svg.append(
    s('defs', {},
      // userSpaceOnUse: the arrowhead keeps its size whatever the edge's stroke width.
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z' })),
      s('marker', { id: 'arrow-last', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 12, markerHeight: 12, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z' })),
    ),
  );

  // Edges arriving at one state from the left and above get their own arrival points on its top side, so
  // their arrowheads never overlap (several states lead to `stopped`).
  const arrivals = new Map();
  for (const e of L.edges) {
    if (e.from === e.to) continue;
    const span = L.col.get(e.to) - L.col.get(e.from);
    if (span > 1 || (span === 1 && L.edges.some((o) => o.from === e.to && o.to === e.from))) {
      if (!arrivals.has(e.to)) arrivals.set(e.to, []);
      arrivals.get(e.to).push(e);
    }
  }
  for (const list of arrivals.values()) list.sort((x, y) => L.col.get(x.from) - L.col.get(y.from));

  for (const e of L.edges) {
    const a = L.nodes.get(e.from), b = L.nodes.get(e.to);
    if (!a || !b) continue;
    const isLast = last && last.from === e.from && last.to === e.to && e.events.includes(last.event);
    const cls = ['edge', isLast ? 'last' : '', current ? (available.has(`${e.from}->${e.to}`) ? 'available' : 'unavailable') : ''].join(' ').trim();
    const g = s('g', { class: cls, 'data-from': e.from, 'data-to': e.to, 'data-events': e.events.join(' '), 'data-fired': isLast ? last.event : null });
    // One tspan per event: only the event that actually happened is highlighted (PAUSE, not RISK_BREACH).
    const label = () =>
      e.events.flatMap((ev, i) => [
        ...(i > 0 ? [s('tspan', {}, ' / ')] : []),
        s('tspan', { class: isLast && ev === last.event ? 'fired' : null, 'data-event': ev }, ev),
      ]);
    if (e.from === e.to) {
      // A self-transition: a loop above the state.
      const x = a.x + a.w / 2, y = a.y;
      g.append(s('path', { d: `M${x - 14},${y} C${x - 30},${y - 50} ${x + 30},${y - 50} ${x + 14},${y}`, 'marker-end': `url(#${isLast ? 'arrow-last' : 'arrow'})` }));
      g.append(s('text', { x, y: y - 44 }, label()));
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
    const p0 = clip(a, mx, my);
    let p2 = clip(b, mx, my);
    const arriving = arrivals.get(e.to);
    if (arriving && arriving.length > 1 && arriving.includes(e) && forward) {
      const k = arriving.indexOf(e);
      p2 = [b.x + (b.w * (k + 1)) / (arriving.length + 1), b.y];
    }
    g.append(s('path', { d: `M${p0[0]},${p0[1]} Q${mx},${my} ${p2[0]},${p2[1]}`, 'marker-end': `url(#${isLast ? 'arrow-last' : 'arrow'})` }));
    const lx = 0.25 * p0[0] + 0.5 * mx + 0.25 * p2[0], ly = 0.25 * p0[1] + 0.5 * my + 0.25 * p2[1];
    g.append(s('text', { x: lx, y: ly + (bow === 0 ? -8 : forward ? -6 : 14) }, label()));
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
    g.append(s('g', { class: 'badge' }, s('title', {}, `${c} session(s) in ${n.id}`), s('circle', { cx: n.x + n.w - 2, cy: n.y + 2, r: 11 }), s('text', { x: n.x + n.w - 2, y: n.y + 2 }, String(c))));
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
        h('td', { class: 'id' }, idText(v.id)),
        h('td', {}, v.kind),
        h('td', { class: `status status-${v.status}` }, v.status),
        h('td', {}, v.strategyName ?? v.strategyId),
        h('td', { class: 'muted when' }, when(v.updatedAt)),
      ),
    ),
  );
  document.getElementById('empty').hidden = rows.length > 0;
  document.getElementById('count').textContent = `${rows.length} session${rows.length === 1 ? '' : 's'}`;
}

function refilter() {
  state.sessions = new Map([...state.all].filter(([, v]) => matchesFilters(v)));
}

/** The default selection: the most recently updated running session, else the most recent one. */
function defaultSelection() {
  const recent = [...state.all.values()].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0));
  return (recent.find((v) => v.status === 'running') ?? recent[0])?.id ?? null;
}

async function loadList() {
  // Every session: the chart counts them all; the filters only narrow the list.
  const { sessions } = await getJson('/api/sessions');
  state.all = new Map(sessions.map((v) => [v.id, v]));
  refilter();
  if (!state.selected) {
    state.selected = defaultSelection();
    if (state.selected) history.replaceState(null, '', `#${encodeURIComponent(state.selected)}`);
  }
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
  drawControls(v);
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

const PAGE = 25;

function drawTrading(page, fills, positions, pnl) {
  document.querySelector('#positions tbody').replaceChildren(
    ...positions.map((p) =>
      h('tr', {}, h('td', {}, p.symbol), h('td', { class: 'num' }, qty(p.qty)), h('td', { class: 'num' }, price(p.avgPrice)), h('td', { class: 'num' }, price(p.lastPrice)), h('td', { class: signClass(p.realizedPnl) }, money(p.realizedPnl)), h('td', { class: signClass(p.unrealizedPnl) }, money(p.unrealizedPnl))),
    ),
  );
  const from = page.orders.length ? page.offset + 1 : 0;
  document.getElementById('orders-count').textContent = `(${from}-${page.offset + page.orders.length} of ${page.total}, newest first)`;
  document.getElementById('orders-newer').disabled = page.offset === 0;
  document.getElementById('orders-older').disabled = page.offset + page.orders.length >= page.total;
  const canWrite = Boolean(state.ui.writable && state.token);
  document.querySelector('#orders tbody').replaceChildren(
    ...page.orders.map((o) =>
      h('tr', { 'data-order-id': o.clientOrderId, 'data-status': o.status },
        h('td', { class: 'muted when' }, when(o.createdAt)),
        h('td', { class: 'id' }, idText(o.clientOrderId)),
        h('td', {}, o.symbol),
        h('td', {}, o.side),
        h('td', { class: 'num' }, qty(o.qty)),
        h('td', {}, o.type),
        h('td', { class: 'num' }, price(o.limitPrice)),
        h('td', { class: 'order-status' }, statusText(o.status),
          o.status === 'pending_approval' && canWrite
            ? h('span', { class: 'decide' },
                h('button', { 'data-approve': o.clientOrderId, onclick: () => orderDecision(o, 'approve') }, 'approve'),
                h('button', { 'data-reject': o.clientOrderId, class: 'danger', onclick: () => orderDecision(o, 'reject') }, 'reject'),
              )
            : [],
        ),
        h('td', { class: 'num' }, qty(o.filledQty)),
        h('td', { class: 'num' }, price(o.avgFillPrice)),
        h('td', { class: 'when' }, o.status === 'pending_approval' ? when(o.expiresAt) : ''),
        h('td', {}, o.reason ?? ''),
      ),
    ),
  );
  document.getElementById('fills-count').textContent = `(${fills.length})`;
  document.querySelector('#fills tbody').replaceChildren(
    ...[...fills].reverse().slice(0, 200).map((f) =>
      h('tr', {}, h('td', { class: 'muted when' }, when(f.at)), h('td', { class: 'id' }, idText(f.clientOrderId)), h('td', {}, f.symbol), h('td', {}, f.side), h('td', { class: 'num' }, qty(f.qty)), h('td', { class: 'num' }, price(f.price)), h('td', { class: 'num' }, money(f.commission))),
    ),
  );
  const item = (k, v, cls = 'num') => h('div', {}, h('dt', {}, k), h('dd', { class: cls }, v));
  document.getElementById('pnl').replaceChildren(
    ...(pnl
      ? [
          item('equity', money(pnl.equity)),
          item('cash', money(pnl.cash)),
          item('realized', money(pnl.realizedPnl), signClass(pnl.realizedPnl)),
          item('unrealized', money(pnl.unrealizedPnl), signClass(pnl.unrealizedPnl)),
          item('commission', money(pnl.commission)),
          item('drawdown', `${pnl.drawdownPct.toFixed(2)}%`),
          item('max drawdown', `${pnl.maxDrawdownPct.toFixed(2)}%`),
          item('fills', String(pnl.fills)),
        ]
      : []),
  );
}

// ---------- charts (lightweight-charts, served by the daemon) ----------
// Its logo injects an inline <style> the page's CSP refuses: attribution is a text line under the charts instead.

const charts = { equity: null, price: null };
function chartOf(key, el) {
  if (charts[key] || typeof LightweightCharts === 'undefined') return charts[key];
  const LW = LightweightCharts;
  const chart = LW.createChart(el, { autoSize: true, layout: { background: { color: '#ffffff' }, textColor: '#1d1f21', fontSize: 11, attributionLogo: false }, grid: { vertLines: { color: '#f0f1f3' }, horzLines: { color: '#f0f1f3' } }, timeScale: { timeVisible: true, secondsVisible: true }, localization: { priceFormatter: (p) => money(p) } });
  const series = key === 'equity' ? chart.addSeries(LW.LineSeries, { color: '#0b6bcb', lineWidth: 2 }) : chart.addSeries(LW.CandlestickSeries, { upColor: '#1f8a3b', downColor: '#b42318', wickUpColor: '#1f8a3b', wickDownColor: '#b42318', borderVisible: false });
  const markers = key === 'price' ? LW.createSeriesMarkers(series, []) : null;
  charts[key] = { chart, series, markers };
  return charts[key];
}

/** lightweight-charts wants one point per second, ascending: later points in the same second win. */
function perSecond(points) {
  const out = [];
  for (const p of points) {
    if (out.length && out.at(-1).time === p.time) out[out.length - 1] = p;
    else if (!out.length || out.at(-1).time < p.time) out.push(p);
  }
  return out;
}

function drawCharts(equity, bars, fills, symbol) {
  const eq = chartOf('equity', document.getElementById('equity-chart'));
  const pr = chartOf('price', document.getElementById('price-chart'));
  if (!eq || !pr) return;
  eq.series.setData(perSecond(equity.map((p) => ({ time: Math.floor(p.at / 1000), value: p.equity }))));
  const candles = [];
  for (const b of bars) {
    const t = Math.floor(b.time / 1000);
    const last = candles.at(-1);
    if (last && last.time === t) Object.assign(last, { high: Math.max(last.high, b.high), low: Math.min(last.low, b.low), close: b.close });
    else if (!last || last.time < t) candles.push({ time: t, open: b.open, high: b.high, low: b.low, close: b.close });
  }
  pr.series.setData(candles);
  // Markers sit on the bar a fill belongs to: the last bar at or before the fill's time.
  const times = candles.map((c) => c.time);
  const markers = [];
  // Labels only while they can be read; beyond that the arrows alone (the fills table has the figures).
  const label = (text) => (fills.length <= 20 ? text : '');
  for (const f of fills.filter((x) => x.symbol === symbol)) {
    const t = Math.floor(Date.parse(f.at) / 1000);
    let lo = 0, hi = times.length - 1, at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) { at = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (at < 0) continue;
    markers.push(f.side === 'buy'
      ? { time: times[at], position: 'belowBar', color: '#1f8a3b', shape: 'arrowUp', text: label(`B ${qty(f.qty)} @ ${price(f.price)}`) }
      : { time: times[at], position: 'aboveBar', color: '#b42318', shape: 'arrowDown', text: label(`S ${qty(f.qty)} @ ${price(f.price)}`) });
  }
  markers.sort((a, b) => a.time - b.time);
  pr.markers.setMarkers(markers);
  document.getElementById('price-chart').dataset.markers = String(markers.length);
  document.getElementById('price-chart').dataset.bars = String(candles.length);
  document.getElementById('equity-chart').dataset.points = String(equity.length);
  eq.chart.timeScale().fitContent();
  pr.chart.timeScale().fitContent();
}

// ---------- control (writes become the same BullMQ commands sessionctl sends) ----------

function drawAccess() {
  const access = document.getElementById('access');
  const unlock = document.getElementById('unlock');
  const kill = document.getElementById('kill-switch');
  if (!state.ui.writable) {
    access.textContent = 'read-only: no http.token is configured, so the page cannot control sessions';
    unlock.hidden = true;
    kill.hidden = true;
  } else if (!state.token) {
    access.textContent = 'controls locked: enter the token';
    unlock.hidden = false;
    kill.hidden = true;
  } else {
    access.textContent = 'controls unlocked';
    unlock.hidden = true;
    kill.hidden = false;
  }
  if (state.detail) drawControls(state.detail.session);
}

function drawControls(v) {
  const box = document.getElementById('controls');
  box.hidden = !(state.ui.writable && state.token);
  const can = new Set(state.machine ? state.machine.transitions.filter((t) => t.source === v.status).map((t) => t.event) : []);
  for (const b of box.querySelectorAll('button[data-command]')) b.disabled = !can.has(b.dataset.command.toUpperCase());
}

async function write(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${state.token}`, 'idempotency-key': crypto.randomUUID() },
    body: JSON.stringify(body ?? {}),
  });
  const out = await res.json().catch(() => ({}));
  if (res.status === 401) {
    state.token = null;
    sessionStorage.removeItem('sessiond-token');
    drawAccess();
  }
  if (!res.ok) throw new Error(out?.error ? `${out.error.code}: ${out.error.message}` : `${res.status}`);
  return out;
}

function report(text) {
  document.getElementById('control-result').textContent = text;
}

async function command(name) {
  const v = state.detail?.session;
  if (!v) return;
  let reason;
  if (name === 'stop') {
    reason = prompt(`Stop session ${v.id}? This is final. Reason:`, 'operator');
    if (reason === null) return;
  }
  try {
    await write(`/api/sessions/${encodeURIComponent(v.id)}/${name}`, reason ? { reason } : {});
    report(`${name}: done`);
  } catch (err) {
    report(`${name}: ${err.message}`);
  }
}

async function orderDecision(o, decision) {
  try {
    await write(`/api/sessions/${encodeURIComponent(o.sessionId)}/orders/${encodeURIComponent(o.clientOrderId)}/${decision}`, {});
    report(`${decision} ${o.clientOrderId}: done`);
  } catch (err) {
    report(`${decision} ${o.clientOrderId}: ${err.message}`);
  }
  void loadDetail();
}

async function killSwitch() {
  const n = [...state.all.values()].filter((v) => v.status === 'running' || v.status === 'paused').length;
  if (!confirm(`Kill-switch: stop all ${n} running and paused sessions and cancel their open orders?`)) return;
  try {
    const { stopped } = await write('/api/kill-switch', { confirm: true, reason: 'kill-switch from the page' });
    report(`kill-switch: stopped ${stopped.length}`);
  } catch (err) {
    report(`kill-switch: ${err.message}`);
  }
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
    const enc = encodeURIComponent(id);
    const symbols = d.session.symbols ?? [];
    if (!symbols.includes(state.chartSymbol)) state.chartSymbol = symbols[0] ?? null;
    const picker = document.getElementById('chart-symbol');
    picker.replaceChildren(...symbols.map((x) => h('option', { value: x, selected: x === state.chartSymbol ? 'selected' : null }, x)));
    const [page, { positions }, pnl, { equity }, bars] = await Promise.all([
      getJson(`/api/sessions/${enc}/orders?offset=${state.ordersOffset}&limit=${PAGE}`),
      getJson(`/api/sessions/${enc}/positions`),
      getJson(`/api/sessions/${enc}/pnl`).catch(() => null),
      getJson(`/api/sessions/${enc}/equity`).catch(() => ({ equity: [] })),
      getJson(`/api/sessions/${enc}/bars?limit=600${state.chartSymbol ? `&symbol=${encodeURIComponent(state.chartSymbol)}` : ''}`).catch(() => ({ bars: [] })),
    ]);
    if (seq !== detailSeq) return;
    drawTrading(page, page.fills, positions, pnl);
    drawCharts(equity, bars.bars, page.fills, state.chartSymbol);
  } catch (err) {
    if (seq !== detailSeq) return;
    state.detail = null;
    drawDetail();
    document.getElementById('detail-title').textContent = `Session ${id}: ${err.message}`;
  }
}

function select(id) {
  if (id !== state.selected) state.ordersOffset = 0;
  state.selected = id;
  history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  drawList();
  void loadDetail();
}

// ---------- live updates ----------

function onTransition(ev) {
  const v = ev.session;
  state.all.set(v.id, v);
  refilter();
  if (!state.selected) state.selected = defaultSelection();
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
  es.addEventListener('order', (e) => {
    const ev = JSON.parse(e.data);
    if (ev.sessionId === state.selected) scheduleDetail();
  });
  es.addEventListener('error', () => {
    badge.textContent = 'reconnecting…';
    badge.className = 'live off';
  });
}

// Order updates can come in bursts: re-read the selected session's book at most every 300 ms.
let detailTimer;
function scheduleDetail() {
  if (detailTimer) return;
  detailTimer = setTimeout(() => {
    detailTimer = undefined;
    void loadDetail();
  }, 300);
}

function showError(err) {
  document.getElementById('detail-hint').textContent = String(err.message ?? err);
}

async function init() {
  // Before any await: a hash set while the first reads are in flight (a link followed, or the
  // address edited, just after the page opened) must not be missed, or the page would show the
  // default session under another session's address.
  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.replace(/^#/, ''));
    if (id && id !== state.selected) select(id);
  });
  const form = document.getElementById('filters');
  form.addEventListener('change', () => {
    state.filters.status = form.elements.status.value;
    state.filters.kind = form.elements.kind.value;
    refilter();
    drawList();
  });
  document.getElementById('orders-newer').addEventListener('click', () => {
    state.ordersOffset = Math.max(0, state.ordersOffset - PAGE);
    void loadDetail();
  });
  document.getElementById('orders-older').addEventListener('click', () => {
    state.ordersOffset += PAGE;
    void loadDetail();
  });
  document.getElementById('chart-symbol').addEventListener('change', (e) => {
    state.chartSymbol = e.target.value;
    void loadDetail();
  });
  for (const b of document.querySelectorAll('#controls button[data-command]')) b.addEventListener('click', () => command(b.dataset.command));
  document.getElementById('kill-switch').addEventListener('click', () => killSwitch());
  document.getElementById('unlock').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = e.target.elements.token.value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem('sessiond-token', token);
    e.target.reset();
    drawAccess();
    void loadDetail();
  });
  state.ui = await getJson('/api/ui').catch(() => ({ writable: false, tokenRequired: false }));
  drawAccess();
  state.machine = await getJson('/api/machine');
  drawChart();
  connect();
}

init().catch(showError);
