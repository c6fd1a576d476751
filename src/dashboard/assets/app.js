// berth dashboard: one server-sent-event stream (api/stream) feeds every
// view; actions go to the control API (api/v1/...) with the session's CSRF
// token. No framework, no build step, nothing from outside.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const HISTORY = 90; // samples kept for sparklines (one a second)
const MAX_LOG_LINES = 5000;

const $ = (sel, root) => (root || document).querySelector(sel);

// An element with attributes and children (strings become text nodes).
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

const state = {
  session: null,
  ps: null,
  model: null,
  usage: new Map(), // replica name -> {cpu: [], mem: [], last: {t, cpu}}
  edge: null,
  edgeHistory: new Map(), // route -> [rps]
  events: [],
  logs: [],
  services: new Set(), // services shown in the log view; empty = all
  knownServices: new Set(),
  paused: false,
  pausedQueue: [],
  history: false, // showing a past time, not live
  dirty: new Set(),
};

// ---------- formatting ----------

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
}

function duration(s) {
  if (s === null || s === undefined) return '–';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}

function ms(v) {
  if (v === null || v === undefined) return '–';
  return v < 10 ? v.toFixed(2) + ' ms' : v.toFixed(0) + ' ms';
}

function hue(name) {
  let x = 0;
  for (const c of name) x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return x % 360;
}

function colour(el, name) {
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  el.style.color = 'hsl(' + hue(name) + ' 70% ' + (dark ? '65%' : '35%') + ')';
}

// How a replica is doing: ok, warn, bad or idle.
function condition(r) {
  if (r.state === 'failed' || r.state === 'restarting' || r.health === 'unhealthy') return 'bad';
  if (r.state === 'running') return r.health === 'healthy' || (r.health === 'none' && r.ready) ? 'ok' : 'warn';
  if (r.state === 'exited') return !r.exit || /code 0\b/.test(r.exit) ? 'idle' : 'bad';
  if (r.state === 'stopped' || r.state === 'stopping') return 'idle';
  return 'warn';
}

function sparkline(values, label) {
  const el = svg('svg', { class: 'spark', viewBox: '0 0 64 18', role: 'img', 'aria-label': label });
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const step = 64 / (HISTORY - 1);
    const start = 64 - step * (values.length - 1);
    const pts = values.map((v, i) => (start + i * step).toFixed(1) + ',' + (17 - (v / max) * 16).toFixed(1));
    el.append(svg('polyline', { points: pts.join(' ') }));
  }
  return el;
}

function push(list, v) {
  list.push(v);
  if (list.length > HISTORY) list.shift();
}

// ---------- data in ----------

function onPs(ps) {
  state.ps = ps;
  const t = ps.ts ? Date.parse(ps.ts) : Date.now();
  for (const s of ps.services) {
    for (const r of s.replicas) {
      let u = state.usage.get(r.name);
      if (!u) { u = { cpu: [], mem: [], last: null }; state.usage.set(r.name, u); }
      if (u.last && u.last.t === t) continue;
      if (r.cpu_seconds !== null && r.cpu_seconds !== undefined) {
        if (u.last && u.last.cpu !== null && t > u.last.t && r.cpu_seconds >= u.last.cpu) {
          push(u.cpu, (100 * (r.cpu_seconds - u.last.cpu)) / ((t - u.last.t) / 1000));
        }
      }
      if (r.rss_bytes !== null && r.rss_bytes !== undefined) push(u.mem, r.rss_bytes);
      u.last = { t, cpu: r.cpu_seconds === undefined ? null : r.cpu_seconds };
    }
    if (!state.knownServices.has(s.name)) {
      state.knownServices.add(s.name);
      state.dirty.add('logServices');
    }
  }
  state.dirty.add('stack');
  state.dirty.add('edge');
}

function onEdge(edge) {
  state.edge = edge;
  for (const r of edge.routes) {
    let list = state.edgeHistory.get(r.route);
    if (!list) { list = []; state.edgeHistory.set(r.route, list); }
    push(list, r.rps);
  }
  state.dirty.add('edge');
}

function onEvent(kind, e) {
  state.events.push({ kind, e });
  if (state.events.length > 1000) state.events.shift();
  state.dirty.add('events');
}

function onLogs(batch) {
  for (const rec of batch) {
    // berth's own lines and the proxy's access log are sources too.
    if (rec.service && !state.knownServices.has(rec.service)) {
      state.knownServices.add(rec.service);
      state.dirty.add('logServices');
    }
  }
  if (state.paused || state.history) {
    state.pausedQueue.push(...batch);
    if (state.pausedQueue.length > MAX_LOG_LINES) state.pausedQueue.splice(0, state.pausedQueue.length - MAX_LOG_LINES);
    return;
  }
  appendLogs(batch);
}

// ---------- the stream ----------

let source = null;

function connect() {
  source = new EventSource('api/stream');
  const conn = $('#conn');
  source.onopen = () => { conn.textContent = 'live'; conn.className = 'conn live'; };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      conn.textContent = 'disconnected: log in again with `berth dashboard`';
      conn.className = 'conn down';
      // A restarted berth or a network blip: try again now and then.
      setTimeout(() => { if (source.readyState === EventSource.CLOSED) connect(); }, 5000);
    } else {
      conn.textContent = 'reconnecting…';
      conn.className = 'conn down';
    }
  };
  const json = (f) => (m) => { try { f(JSON.parse(m.data)); } catch (err) { console.error(err); } schedule(); };
  source.addEventListener('ps', json(onPs));
  source.addEventListener('edge', json(onEdge));
  source.addEventListener('event', json((e) => onEvent('event', e)));
  source.addEventListener('deploy', json((e) => {
    onEvent('deploy', e);
    // A deploy may add, remove or rewire services.
    fetch('api/model', { credentials: 'same-origin' }).then((r) => r.json()).then((m) => { state.model = m; state.dirty.add('stack'); schedule(); });
  }));
  source.addEventListener('logs', json(onLogs));
  source.addEventListener('gap', json((g) => appendNote('… ' + g.missed + ' updates were missed while disconnected; the log files have every line (Download)')));
  source.addEventListener('reset', () => {
    state.usage.clear(); state.edgeHistory.clear(); state.events = [];
    $('#log').replaceChildren(); state.logs = [];
    state.dirty.add('events');
  });
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const d = state.dirty;
    if (d.has('stack')) renderStack();
    if (d.has('edge')) renderEdge();
    if (d.has('events')) renderEvents();
    if (d.has('logServices')) renderLogServices();
    d.clear();
  });
}

// ---------- stack view ----------

function renderStack() {
  const ps = state.ps;
  if (!ps) return;
  $('#project').textContent = ps.project;
  document.title = ps.project + ' · berth';
  let total = 0, ok = 0, bad = 0, idle = 0;
  for (const s of ps.services) for (const r of s.replicas) {
    const c = condition(r);
    if (c === 'idle') { idle++; continue; } // done jobs and stopped replicas
    total++;
    if (c === 'ok') ok++;
    if (c === 'bad') bad++;
  }
  $('#summary').replaceChildren(...[
    h('span', { class: 'chip' }, ps.services.length + ' services'),
    h('span', { class: 'chip', id: 'count-ok' }, ok + '/' + total + ' healthy'),
    bad ? h('span', { class: 'chip s-bad' }, bad + ' failing') : null,
    idle ? h('span', { class: 'chip' }, idle + ' exited or stopped') : null,
    ps.proxy.length ? h('span', { class: 'chip' }, 'proxy ' + ps.proxy.join(' ')) : null,
    ps.log_lines_lost ? h('span', { class: 'chip s-bad' }, ps.log_lines_lost + ' log lines lost') : null,
  ].filter(Boolean));
  const body = $('#replicas tbody');
  const rows = [];
  for (const s of ps.services) {
    rows.push(h('tr', { class: 'service', dataset: { service: s.name } },
      h('td', { colspan: 10 },
        h('button', { type: 'button', class: 'linkish', onclick: () => showDetail(s.name), 'aria-label': 'Details of ' + s.name }, s.name),
        ' ',
        h('span', { class: 'muted' }, Object.entries(s.listening).map(([p, a]) => p + '→' + a).join(' ')),
        actions(s))));
    for (const r of s.replicas) rows.push(replicaRow(r));
  }
  body.replaceChildren(...rows);
  renderGraph();
}

function actions(s) {
  if (!state.session || state.session.read_only) return null;
  const count = s.replicas.filter((r) => r.state !== 'stopped').length;
  const input = h('input', { type: 'number', min: 0, max: 100, value: count || s.replicas.length, class: 'scale', 'aria-label': 'Replicas of ' + s.name });
  return h('span', { class: 'actions' },
    h('button', { type: 'button', dataset: { action: 'restart', service: s.name }, onclick: (e) => act(e.target, 'restart', s.name, 'Restart ' + s.name + ' replica by replica?', { services: [s.name] }) }, 'Restart'),
    h('button', { type: 'button', dataset: { action: 'stop', service: s.name }, onclick: (e) => act(e.target, 'stop', s.name, 'Stop ' + s.name + '?', { services: [s.name] }) }, 'Stop'),
    h('button', { type: 'button', dataset: { action: 'start', service: s.name }, onclick: (e) => act(e.target, 'start', s.name, 'Start ' + s.name + '?', { services: [s.name] }) }, 'Start'),
    input,
    h('button', { type: 'button', dataset: { action: 'scale', service: s.name }, onclick: (e) => {
      const n = Number(input.value);
      act(e.target, 'scale', s.name, 'Scale ' + s.name + ' to ' + n + ' replica' + (n === 1 ? '' : 's') + '?', { scale: { [s.name]: n } });
    } }, 'Scale'));
}

function replicaRow(r) {
  const c = condition(r);
  const u = state.usage.get(r.name) || { cpu: [], mem: [] };
  const cpuNow = r.pid && u.cpu.length ? u.cpu[u.cpu.length - 1].toFixed(1) + '%' : '–';
  const out = r.failure ? (r.failure.message || JSON.stringify(r.failure)) : (r.message || r.exit || '');
  // Declared port → the replica's own ($PORT when none is declared).
  const ports = Object.entries(r.ports || {}).map(([d, p]) => (d === '0' ? ':' : d + '→') + p).join(' ');
  return h('tr', { class: c, dataset: { replica: r.name, state: r.state, health: r.health, condition: c } },
    h('td', {}, r.name),
    h('td', {}, h('span', { class: 'badge s-' + c, dataset: { field: 'state' } }, r.state)),
    h('td', {}, h('span', { dataset: { field: 'health' } }, r.health + (r.ready ? ' · ready' : ''))),
    h('td', { dataset: { field: 'restarts' } }, r.restarts + (r.oom_kills ? ' (' + r.oom_kills + ' OOM)' : '')),
    h('td', {}, duration(r.uptime_seconds)),
    h('td', {}, cpuNow, sparkline(u.cpu, 'CPU of ' + r.name)),
    h('td', {}, bytes(r.rss_bytes) + (r.memory_limit ? ' / ' + bytes(r.memory_limit) : ''), sparkline(u.mem, 'memory of ' + r.name)),
    h('td', {}, ports),
    h('td', { dataset: { field: 'pid' } }, r.pid === null || r.pid === undefined ? '–' : r.pid),
    h('td', { class: 'out', title: out }, out));
}

function serviceCondition(s) {
  const cs = s.replicas.map(condition);
  if (!cs.length) return 'idle';
  if (cs.includes('bad')) return 'bad';
  if (cs.includes('warn')) return 'warn';
  if (cs.every((c) => c === 'idle')) return 'idle';
  return 'ok';
}

function renderGraph() {
  const g = $('#graph');
  const model = state.model;
  const ps = state.ps;
  if (!model || !ps) return;
  const byName = new Map(ps.services.map((s) => [s.name, s]));
  const depth = new Map();
  const level = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    const svc = model.services.find((s) => s.name === name);
    let d = 0;
    if (svc && !seen.has(name)) {
      seen.add(name);
      for (const dep of Object.keys(svc.depends_on)) d = Math.max(d, level(dep, seen) + 1);
    }
    depth.set(name, d);
    return d;
  };
  for (const s of model.services) level(s.name, new Set());
  const columns = [];
  for (const s of model.services) {
    const d = depth.get(s.name);
    (columns[d] = columns[d] || []).push(s.name);
  }
  const W = 140, H = 34, GX = 60, GY = 16;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((name, y) => pos.set(name, { x: 8 + x * (W + GX), y: 8 + y * (H + GY) })));
  const width = 16 + columns.length * (W + GX) - GX;
  const height = 16 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  g.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  g.setAttribute('width', width);
  g.setAttribute('height', height);
  const defs = svg('defs', {});
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrow' }));
  defs.append(marker);
  const parts = [defs];
  for (const s of model.services) {
    const to = pos.get(s.name);
    for (const [dep, cond] of Object.entries(s.depends_on)) {
      const from = pos.get(dep);
      if (!from) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      const mid = (x1 + x2) / 2;
      const path = svg('path', { class: 'edge', d: 'M' + x1 + ',' + y1 + ' C' + mid + ',' + y1 + ' ' + mid + ',' + y2 + ' ' + x2 + ',' + y2, 'marker-end': 'url(#arrow)' });
      const title = svg('title', {});
      title.textContent = s.name + ' waits for ' + dep + ' (' + cond + ')';
      path.append(title);
      parts.push(path);
    }
  }
  for (const s of model.services) {
    const p = pos.get(s.name);
    const live = byName.get(s.name);
    const c = live ? serviceCondition(live) : 'idle';
    const node = svg('g', { class: 'node ' + c, transform: 'translate(' + p.x + ',' + p.y + ')', 'data-service': s.name, 'data-condition': c });
    node.append(svg('rect', { width: W, height: H, rx: 8 }));
    const label = svg('text', { x: 10, y: 21 });
    const replicas = live ? live.replicas.length : 0;
    label.textContent = s.name + (replicas > 1 ? ' ×' + replicas : '') + ' · ' + s.runtime;
    node.append(label);
    parts.push(node);
  }
  g.replaceChildren(...parts);
}

function showDetail(name) {
  const d = $('#detail');
  const s = state.model && state.model.services.find((x) => x.name === name);
  if (!s) return;
  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const env = Object.entries(s.environment);
  d.replaceChildren(
    h('h2', {}, s.name, ' ', h('button', { type: 'button', onclick: () => { d.hidden = true; } }, 'Close')),
    h('dl', {},
      row('runtime', s.runtime),
      s.image ? row('image', s.image) : null,
      s.command ? row('command', s.command.join(' ')) : null,
      row('replicas', s.replicas),
      row('depends on', Object.entries(s.depends_on).map(([k, v]) => k + ' (' + v + ')').join(', ') || '–'),
      s.healthcheck ? row('healthcheck', JSON.stringify(s.healthcheck)) : null,
      s.ready ? row('ready', JSON.stringify(s.ready)) : null,
      env.length ? row('environment', env.map(([k, v]) => k + '=' + v).join('\n')) : null));
  d.hidden = false;
  d.scrollIntoView({ block: 'nearest' });
}

// ---------- actions ----------

function confirmAction(text) {
  const dlg = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    $('#confirm-ok').focus();
  });
}

async function act(button, verb, service, question, body) {
  if (!(await confirmAction(question))) return;
  const result = $('#result');
  result.hidden = false;
  result.className = 'result';
  result.dataset.state = 'running';
  result.textContent = verb + ' ' + service + '…';
  button.disabled = true;
  try {
    const r = await fetch('api/v1/' + verb, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-berth-csrf': state.session.csrf || '' },
      body: JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    if (r.ok) {
      result.textContent = (answer.lines || []).join('\n') || verb + ' ' + service + ': done';
      result.dataset.state = 'done';
    } else {
      result.className = 'result failed';
      result.textContent = verb + ' ' + service + ' failed: ' + (answer.error || r.status);
      result.dataset.state = 'failed';
    }
  } catch (err) {
    result.className = 'result failed';
    result.textContent = verb + ' ' + service + ' failed: ' + err;
    result.dataset.state = 'failed';
  } finally {
    button.disabled = false;
  }
}

// ---------- edge view ----------

function renderEdge() {
  const ps = state.ps;
  $('#listeners').textContent = ps && ps.proxy.length ? 'Listening on ' + ps.proxy.join(', ') : 'No edge proxy in this stack.';
  const body = $('#routes tbody');
  const rows = [];
  const replicasOf = (svc) => {
    const s = ps && ps.services.find((x) => x.name === svc);
    if (!s) return '–';
    return s.replicas.map((r) => (r.ready ? '● ' : '○ ') + r.name).join('  ');
  };
  for (const r of (state.edge ? state.edge.routes : [])) {
    // berth's own answers (/health, /metrics) and unrouted requests, once there are some.
    if (!r.target && r.total === 0) continue;
    const svc = r.target.startsWith('service:') ? r.target.slice(8) : null;
    rows.push(h('tr', { dataset: { route: r.route }, class: r.error_rate > 0.05 ? 'bad' : '' },
      h('td', {}, r.route),
      h('td', {}, r.target || '–'),
      h('td', {}, r.rps.toFixed(0), sparkline(state.edgeHistory.get(r.route) || [], 'requests per second of ' + r.route)),
      h('td', {}, (100 * r.error_rate).toFixed(1) + '%'),
      h('td', {}, ms(r.p50_ms)),
      h('td', {}, ms(r.p99_ms)),
      h('td', {}, r.total),
      h('td', {}, svc ? replicasOf(svc) : '–')));
  }
  body.replaceChildren(...rows);
  const certs = (ps && ps.certificates) || [];
  $('#certs tbody').replaceChildren(...certs.map((c) => {
    const left = c.not_after ? Math.floor((Date.parse(c.not_after) - Date.now()) / 86400000) : null;
    const status = c.acme && c.acme.last_error ? c.acme.last_error : left === null ? 'none yet' : left + ' days left';
    return h('tr', { class: left !== null && left < 14 ? 'warn' : '' },
      h('td', {}, c.source), h('td', {}, c.names.join(', ')), h('td', {}, c.not_after || '–'), h('td', {}, status));
  }));
}

// ---------- events view ----------

function renderEvents() {
  const list = $('#events');
  const items = state.events.slice(-300).reverse().map(({ kind, e }) => {
    if (kind === 'deploy') {
      return h('li', { class: e.failed ? 'bad' : 'ok' }, h('time', {}, e.ts || ''), 'deploy: ', e.message || JSON.stringify(e));
    }
    const c = condition(e);
    return h('li', { class: c, dataset: { replica: e.service + '-' + e.replica } },
      h('time', { datetime: e.ts }, (e.ts || '').replace('T', ' ').replace('Z', '')),
      h('strong', {}, e.service + '-' + e.replica), ' ', e.state,
      e.health !== 'none' ? ' (' + e.health + ')' : '', e.ready ? ' ready' : '',
      e.exit ? ' — ' + e.exit : '', e.message ? ': ' + e.message : '');
  });
  list.replaceChildren(...items);
}

// ---------- logs view ----------

let filter = null;

function parseFilter(text) {
  if (!text) return null;
  const m = /^\/(.*)\/([a-z]*)$/.exec(text);
  if (m) {
    try { return new RegExp(m[1], m[2]); } catch (e) { return { test: () => false, bad: true }; }
  }
  const lower = text.toLowerCase();
  return { test: (s) => s.toLowerCase().includes(lower) };
}

function shown(rec) {
  if (rec.skipped !== undefined) return true;
  if (state.services.size && !state.services.has(rec.service)) return false;
  return !filter || filter.test(rec.line);
}

function logLine(rec) {
  if (rec.skipped !== undefined) return h('div', { class: 'line gap' }, '… ' + rec.skipped + ' lines skipped on this view (the files have them)');
  const name = rec.service + '-' + rec.replica;
  const src = h('span', { class: 'src' }, name);
  colour(src, rec.service);
  return h('div', { class: 'line ' + rec.stream, dataset: { service: rec.service } },
    h('span', { class: 'ts' }, (rec.ts || '').slice(11, 23)), src, h('span', { class: 'text' }, rec.line));
}

function appendLogs(batch) {
  const log = $('#log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  state.logs.push(...batch);
  const frag = document.createDocumentFragment();
  for (const rec of batch) if (shown(rec)) frag.append(logLine(rec));
  log.append(frag);
  if (state.logs.length > MAX_LOG_LINES) state.logs.splice(0, state.logs.length - MAX_LOG_LINES);
  while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function appendNote(text) {
  $('#log').append(h('div', { class: 'line gap' }, text));
}

function rerenderLogs() {
  const log = $('#log');
  const frag = document.createDocumentFragment();
  for (const rec of state.logs) if (shown(rec)) frag.append(logLine(rec));
  log.replaceChildren(frag);
  log.scrollTop = log.scrollHeight;
}

function renderLogServices() {
  const box = $('#log-services');
  box.replaceChildren(...[...state.knownServices].sort().map((name) => {
    const input = h('input', { type: 'checkbox', value: name, onchange: () => {
      if (input.checked) state.services.add(name); else state.services.delete(name);
      updateDownload();
      rerenderLogs();
    } });
    input.checked = state.services.has(name);
    const label = h('label', { class: 'chip' }, input, name);
    colour(label, name);
    return label;
  }));
}

function updateDownload() {
  const q = [...state.services].map((s) => 'service=' + encodeURIComponent(s)).join('&');
  const a = $('#log-download');
  a.href = 'api/v1/logs?tail=all' + (q ? '&' + q : '');
  a.download = ((state.ps && state.ps.project) || 'berth') + '-logs.ndjson';
}

function setPaused(p) {
  state.paused = p;
  const b = $('#log-pause');
  b.setAttribute('aria-pressed', String(p));
  b.textContent = p ? 'Resume' : 'Pause';
  if (!p && !state.history) {
    const queued = state.pausedQueue;
    state.pausedQueue = [];
    appendLogs(queued);
  }
}

async function jump() {
  const value = $('#log-time').value;
  if (!value) return;
  const since = new Date(value).toISOString();
  const q = [...state.services].map((s) => '&service=' + encodeURIComponent(s)).join('');
  const note = $('#log-note');
  note.hidden = false;
  note.textContent = 'Loading from ' + value + '…';
  state.history = true;
  try {
    const r = await fetch('api/v1/logs?tail=' + MAX_LOG_LINES + '&since=' + encodeURIComponent(since) + q, { credentials: 'same-origin' });
    const text = await r.text();
    const recs = text.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch (e) { return null; } }).filter((x) => x && x.line !== undefined);
    state.logs = recs;
    rerenderLogs();
    $('#log').scrollTop = 0;
    note.textContent = 'Showing ' + recs.length + ' lines from ' + value + ' — live lines are held until you go back to live.';
    $('#log-live').hidden = false;
  } catch (err) {
    note.textContent = 'Could not load: ' + err;
  }
}

function backToLive() {
  state.history = false;
  $('#log-live').hidden = true;
  $('#log-note').hidden = true;
  state.logs = [];
  $('#log').replaceChildren();
  setPaused(false);
}

// ---------- views ----------

function showView() {
  const name = (location.hash || '#stack').slice(1);
  for (const v of ['stack', 'edge', 'logs', 'events']) {
    $('#view-' + v).hidden = v !== name;
    const tab = $('#tab-' + v);
    if (v === name) tab.setAttribute('aria-current', 'page'); else tab.removeAttribute('aria-current');
  }
  if (name === 'logs') { const log = $('#log'); log.scrollTop = log.scrollHeight; }
}

async function start() {
  window.addEventListener('hashchange', showView);
  showView();
  $('#log-filter').addEventListener('input', (e) => {
    filter = parseFilter(e.target.value.trim());
    e.target.setAttribute('aria-invalid', filter && filter.bad ? 'true' : 'false');
    rerenderLogs();
  });
  $('#log-pause').addEventListener('click', () => setPaused(!state.paused));
  $('#log-jump').addEventListener('click', jump);
  $('#log-live').addEventListener('click', backToLive);
  try {
    const [session, model] = await Promise.all([
      fetch('api/session', { credentials: 'same-origin' }).then((r) => r.json()),
      fetch('api/model', { credentials: 'same-origin' }).then((r) => r.json()),
    ]);
    state.session = session;
    state.model = model;
    document.body.dataset.readOnly = String(!!session.read_only);
  } catch (err) {
    $('#conn').textContent = 'cannot load the dashboard: ' + err;
    return;
  }
  updateDownload();
  connect();
}

document.addEventListener('DOMContentLoaded', start);
