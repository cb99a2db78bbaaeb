// keel ui: the console's pages. Every piece of data from the cluster
// (names, keys, values, headers, errors) goes into the page as text
// (textContent / text nodes), never as markup: record contents are
// untrusted. The server's Content-Security-Policy backs this up.
'use strict';

const state = { config: { readOnly: true, auth: false }, token: sessionStorage.getItem('keel-token') || '', view: { cleanups: [] }, routeSeq: 0 };

// el builds an element; string children become text nodes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') { for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn); }
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const main = () => document.getElementById('main');
function setStatus(text, bad) {
  const s = document.getElementById('status');
  s.textContent = text || '';
  s.className = bad ? 'error' : 'muted';
}

async function api(path, opts, retried) {
  opts = opts || {};
  const headers = { 'Accept': 'application/json' };
  if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    // A missing or wrong token: ask for it, then make the same call once
    // more, so the page the user opened appears without a reload.
    if (res.status === 401 && !retried && askToken()) return api(path, opts, true);
    throw new Error((body && body.error) || ('HTTP ' + res.status));
  }
  return body;
}

// askToken asks for the console's token; true when one was given.
function askToken() {
  const t = window.prompt('This console needs its access token (keel ui --auth-token):', '');
  if (t === null || t === '') return false;
  state.token = t; sessionStorage.setItem('keel-token', t);
  return true;
}

const enc = encodeURIComponent;
const fmtInt = n => (n === undefined || n === null || n < 0) ? '-' : Number(n).toLocaleString('en-US');
function fmtBytes(n) {
  if (n === undefined || n === null || n < 0) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + u[i];
}
const fmtTime = t => (!t || t.startsWith('0001')) ? '-' : new Date(t).toISOString().replace('T', ' ').replace('Z', ' UTC');
const writable = () => !state.config.readOnly;

// shown renders a key, value or header value as the API describes it.
function shown(b) {
  if (!b || b.kind === 'null') return el('span', { class: 'muted' }, 'null');
  const kids = [];
  if (b.kind !== 'text') kids.push(el('span', { class: 'kind' }, b.kind));
  kids.push(el('pre', { 'data-kind': b.kind }, b.text));
  if (b.truncated) kids.push(el('span', { class: 'muted' }, '… (' + fmtBytes(b.size) + ' in all)'));
  return el('div', {}, kids);
}

function table(cols, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, cols.map(c => el('th', { class: c.num ? 'num' : null }, c.title)))),
    el('tbody', {}, rows.map(r => el('tr', {}, cols.map(c => el('td', { class: c.num ? 'num' : null }, c.cell(r)))))));
}

function link(href, text) { return el('a', { href }, text); }

function field(labelText, input) { return el('label', {}, labelText, input); }

// A view is one visit of a page: what it started (refresh timers, live
// tails) ends when the user goes elsewhere. A page that finishes loading
// after the user has moved on runs its cleanups at once.
function onLeave(view, fn) { if (view === state.view) view.cleanups.push(fn); else fn(); }
function later(view, fn, ms) { const id = setInterval(fn, ms); onLeave(view, () => clearInterval(id)); }

function failBox(err) { return el('p', { class: 'error', 'data-testid': 'error' }, String(err.message || err)); }

// ---- pages ----

async function overviewPage() {
  const o = await api('/api/overview');
  return [el('h1', {}, 'Overview'),
    el('div', { class: 'cards' },
      card('Cluster id', o.clusterId || '-'), card('Controller', o.controller), card('Brokers', o.brokers.length),
      card('Topics', o.topics, 'overview-topics'), card('Partitions', o.partitions, 'overview-partitions')),
    el('h2', {}, 'Brokers'),
    table([{ title: 'id', cell: b => String(b.id) }, { title: 'address', cell: b => b.addr }, { title: 'rack', cell: b => b.rack || '-' },
      { title: 'role', cell: b => b.id === o.controller ? 'controller' : '' }], o.brokers)];
}
function card(k, v, testid) { return el('div', { class: 'card', 'data-testid': testid }, el('div', { class: 'v' }, String(v)), el('div', { class: 'k' }, k)); }

async function topicsPage() {
  const rows = await api('/api/topics');
  const out = [el('h1', {}, 'Topics')];
  if (writable()) out.push(createTopicForm());
  out.push(table([
    { title: 'topic', cell: t => link('#/topic/' + enc(t.name), t.name) },
    { title: 'partitions', num: true, cell: t => String(t.partitions) },
    { title: 'replication', num: true, cell: t => String(t.replication) },
    { title: 'records', num: true, cell: t => fmtInt(t.records) },
    { title: 'size', num: true, cell: t => fmtBytes(t.size) },
    { title: '', cell: t => [link('#/messages/' + enc(t.name), 'messages'), t.internal ? el('span', { class: 'tag' }, 'internal') : null] },
  ], rows, { 'data-testid': 'topics-table' }));
  return out;
}

function createTopicForm() {
  const name = el('input', { name: 'name', placeholder: 'orders', required: true });
  const parts = el('input', { name: 'partitions', type: 'number', min: 1, value: '3' });
  const repl = el('input', { name: 'replication', type: 'number', min: 0, value: '0', title: '0: the broker default' });
  const form = el('form', { 'data-testid': 'create-topic', on: { submit: async ev => {
    ev.preventDefault();
    try {
      await api('/api/topics', { method: 'POST', body: { name: name.value, partitions: Number(parts.value), replication: Number(repl.value) } });
      setStatus('created topic ' + name.value); route();
    } catch (e) { setStatus(e.message, true); }
  } } }, field('new topic', name), field('partitions', parts), field('replication (0: default)', repl), el('button', { type: 'submit' }, 'Create topic'));
  return form;
}

async function topicPage(name) {
  const t = await api('/api/topics/' + enc(name));
  const out = [el('h1', {}, 'Topic ', el('code', {}, t.name)), el('p', {}, link('#/messages/' + enc(t.name), 'Browse messages'))];
  if (writable()) {
    const total = el('input', { type: 'number', min: t.partitions.length + 1, value: String(t.partitions.length + 1) });
    out.push(el('form', { 'data-testid': 'add-partitions', on: { submit: async ev => {
      ev.preventDefault();
      try { await api('/api/topics/' + enc(name) + '/partitions', { method: 'POST', body: { total: Number(total.value) } }); setStatus('partitions now ' + total.value); route(); }
      catch (e) { setStatus(e.message, true); }
    } } }, field('partitions in all', total), el('button', { type: 'submit' }, 'Add partitions')));
  }
  out.push(el('h2', {}, 'Partitions'), table([
    { title: 'partition', num: true, cell: p => String(p.partition) },
    { title: 'leader', num: true, cell: p => String(p.leader) },
    { title: 'replicas', cell: p => p.replicas.join(', ') },
    { title: 'isr', cell: p => p.isr.join(', ') },
    { title: 'start', num: true, cell: p => fmtInt(p.start) },
    { title: 'end', num: true, cell: p => fmtInt(p.end) },
    { title: 'records', num: true, cell: p => fmtInt(p.end - p.start) },
    { title: 'size', num: true, cell: p => fmtBytes(p.size) },
  ], t.partitions, { 'data-testid': 'partitions-table' }));
  out.push(el('h2', {}, 'Configs'), table([
    { title: 'name', cell: c => c.name }, { title: 'value', cell: c => c.value },
    { title: 'source', cell: c => c.source }, { title: '', cell: c => c.default ? el('span', { class: 'muted' }, 'default') : el('span', { class: 'tag' }, 'set') },
  ], t.configs));
  return out;
}

function recordsTable(records, extra) {
  const cols = [
    { title: 'partition', num: true, cell: r => String(r.partition) },
    { title: 'offset', num: true, cell: r => String(r.offset) },
    { title: 'timestamp', cell: r => fmtTime(r.timestamp) },
    { title: 'key', cell: r => shown(r.key) },
    { title: 'value', cell: r => shown(r.value) },
    { title: 'headers', cell: r => r.headers.map(h => el('div', {}, el('code', {}, h.key), ': ', shown(h.value))) },
  ];
  return table((extra || []).concat(cols), records, { 'data-testid': 'records-table' });
}

async function messagesPage(topic, params, view) {
  const t = await api('/api/topics/' + enc(topic));
  const q = new URLSearchParams(params);
  const part = el('select', { name: 'partition' }, t.partitions.map(p => el('option', { value: String(p.partition) }, String(p.partition))));
  part.value = q.get('partition') || '0';
  const start = el('select', { name: 'start' }, ['earliest', 'latest', 'offset', 'time'].map(s => el('option', { value: s }, s)));
  start.value = q.get('start') || 'earliest';
  const offset = el('input', { name: 'offset', type: 'number', min: 0, value: q.get('offset') || '0' });
  const time = el('input', { name: 'time', placeholder: '2024-05-01T10:00:00Z', value: q.get('time') || '' });
  const limit = el('input', { name: 'limit', type: 'number', min: 1, max: 200, value: q.get('limit') || '50' });
  const key = el('input', { name: 'key', placeholder: 'exact key', value: q.get('key') || '' });
  const holder = el('div', {});
  const info = el('p', { class: 'muted', 'data-testid': 'page-info' });
  let page = null;

  async function load(from) {
    const p = new URLSearchParams({ partition: part.value, limit: limit.value });
    if (from !== undefined) { p.set('start', 'offset'); p.set('offset', String(from)); }
    else {
      p.set('start', start.value);
      if (start.value === 'offset') p.set('offset', offset.value);
      if (start.value === 'time') p.set('time', time.value);
    }
    if (key.value !== '') p.set('key', key.value);
    try {
      page = await api('/api/topics/' + enc(topic) + '/messages?' + p.toString());
      info.textContent = 'partition ' + page.partition + ': offsets ' + page.logStart + ' to ' + (page.logEnd - 1) + ' held; showing ' + page.records.length + ' record(s) from ' + page.from + (page.partial ? ' (partial: the broker was slow)' : '');
      holder.replaceChildren(recordsTable(page.records));
      setStatus('');
    } catch (e) { holder.replaceChildren(failBox(e)); }
  }

  let tail = null;
  const tailList = el('div', { 'data-testid': 'tail' });
  const tailBtn = el('button', { type: 'button', class: 'secondary', on: { click: () => {
    if (tail) { tail.close(); tail = null; delete tailList.dataset.open; tailBtn.textContent = 'Live tail'; return; }
    const tq = new URLSearchParams({ partition: part.value });
    if (state.token) tq.set('token', state.token);
    tail = new EventSource('/api/topics/' + enc(topic) + '/tail?' + tq.toString());
    onLeave(view, () => tail && tail.close());
    tailBtn.textContent = 'Stop tail';
    // Open: the server has found where the partitions end; every record
    // written from now on streams in.
    tail.addEventListener('open', () => { tailList.dataset.open = 'true'; });
    const recs = [];
    tail.addEventListener('record', ev => {
      recs.unshift(JSON.parse(ev.data)); if (recs.length > 100) recs.pop();
      tailList.replaceChildren(el('h2', {}, 'Live'), recordsTable(recs));
    });
  } } }, 'Live tail');

  const out = [el('h1', {}, 'Messages of ', link('#/topic/' + enc(topic), topic)),
    el('form', { 'data-testid': 'browse', on: { submit: ev => { ev.preventDefault(); load(); } } },
      field('partition', part), field('start', start), field('offset', offset), field('time', time), field('page size', limit), field('key filter', key),
      el('button', { type: 'submit' }, 'Load'),
      el('button', { type: 'button', class: 'secondary', on: { click: () => page && load(page.prev) } }, '◀ Previous'),
      el('button', { type: 'button', class: 'secondary', on: { click: () => page && load(page.next) } }, 'Next ▶'),
      tailBtn),
    info, holder, tailList];
  if (writable()) out.push(produceForm(topic, () => load()));
  load();
  return out;
}

function produceForm(topic, after) {
  const key = el('input', { name: 'key', placeholder: 'key (empty: null)' });
  const value = el('textarea', { name: 'value', placeholder: '{"id": 1}' });
  const headers = el('input', { name: 'headers', placeholder: 'h1=v1,h2=v2' });
  const result = el('span', { 'data-testid': 'produce-result' });
  return el('div', {}, el('h2', {}, 'Produce a record'),
    el('form', { 'data-testid': 'produce', on: { submit: async ev => {
      ev.preventDefault();
      const hs = headers.value.split(',').filter(s => s.includes('=')).map(s => { const i = s.indexOf('='); return { key: s.slice(0, i), value: s.slice(i + 1) }; });
      try {
        const d = await api('/api/topics/' + enc(topic) + '/messages', { method: 'POST', body: { key: key.value === '' ? null : key.value, value: value.value, headers: hs } });
        result.textContent = 'written to partition ' + d.partition + ' at offset ' + d.offset; result.className = 'ok';
        after();
      } catch (e) { result.textContent = e.message; result.className = 'error'; }
    } } }, field('key', key), field('value', value), field('headers', headers), el('button', { type: 'submit' }, 'Produce'), result));
}

async function groupsPage() {
  const rows = await api('/api/groups');
  return [el('h1', {}, 'Consumer groups'), rows.length === 0 ? el('p', { class: 'muted' }, 'No groups.') : table([
    { title: 'group', cell: g => link('#/group/' + enc(g.group), g.group) },
    { title: 'state', cell: g => g.state || '-' },
    { title: 'protocol', cell: g => g.protocol || '-' },
    { title: 'members', num: true, cell: g => String(g.members) },
    { title: 'lag', num: true, cell: g => fmtInt(g.lag) },
  ], rows, { 'data-testid': 'groups-table' })];
}

function lagChart(points) {
  const w = 480, h = 120, pad = 24;
  const svgNS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('class', 'chart'); svg.setAttribute('width', w); svg.setAttribute('height', h);
  svg.setAttribute('data-testid', 'lag-chart');
  const maxV = Math.max(1, ...points.map(p => p.v));
  const xy = points.map((p, i) => [
    pad + (points.length < 2 ? 0 : i * (w - 2 * pad) / (points.length - 1)),
    h - pad - (p.v / maxV) * (h - 2 * pad)]);
  const line = document.createElementNS(svgNS, 'polyline');
  line.setAttribute('points', xy.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' '));
  svg.append(line);
  // A line of one sample draws nothing: mark every sample with a dot.
  for (const [x, y] of xy) {
    const dot = document.createElementNS(svgNS, 'circle');
    dot.setAttribute('cx', x.toFixed(1)); dot.setAttribute('cy', y.toFixed(1)); dot.setAttribute('r', '2.5');
    svg.append(dot);
  }
  const label = document.createElementNS(svgNS, 'text');
  label.setAttribute('x', 4); label.setAttribute('y', 12);
  label.textContent = 'total lag, max ' + fmtInt(maxV) + ' (last ' + points.length + ' samples)';
  svg.append(label);
  return svg;
}

async function groupPage(name, view) {
  const history = [];
  const body = el('div', {});
  async function refresh() {
    try {
      const g = await api('/api/groups/' + enc(name));
      history.push({ t: Date.now(), v: g.totalLag }); if (history.length > 120) history.shift();
      body.replaceChildren(
        el('div', { class: 'cards' }, card('State', g.state || '-'), card('Protocol', g.protocol || '-'), card('Members', g.members.length), card('Total lag', fmtInt(g.totalLag), 'total-lag')),
        el('h2', {}, 'Lag over time'), lagChart(history),
        el('h2', {}, 'Partitions'), table([
          { title: 'topic', cell: l => l.topic }, { title: 'partition', num: true, cell: l => String(l.partition) },
          { title: 'committed', num: true, cell: l => l.noCommit ? el('span', { class: 'muted' }, 'none') : fmtInt(l.committed) },
          { title: 'end', num: true, cell: l => fmtInt(l.end) }, { title: 'lag', num: true, cell: l => fmtInt(l.lag) },
          { title: 'consumer', cell: l => l.clientId || '-' },
        ], g.lag, { 'data-testid': 'lag-table' }),
        el('h2', {}, 'Members'), g.members.length === 0 ? el('p', { class: 'muted', 'data-testid': 'no-members' }, 'No members: no consumer is in this group now (its committed offsets stay).') : table([
          { title: 'client id', cell: m => m.clientId }, { title: 'host', cell: m => m.host }, { title: 'instance', cell: m => m.instanceId || '-' },
          { title: 'assigned', cell: m => m.assigned.map(a => a.topic + '[' + a.partition + ']').join(', ') || '-' },
        ], g.members));
    } catch (e) { body.replaceChildren(failBox(e)); }
  }
  await refresh();
  later(view, refresh, 3000);
  return [el('h1', {}, 'Group ', el('code', {}, name)), body, resetForm(name)];
}

function resetForm(group) {
  const topic = el('input', { name: 'topic', placeholder: 'topic (empty: all topics)' });
  const to = el('select', { name: 'to' }, ['earliest', 'latest', 'offset', 'time', 'shift'].map(s => el('option', { value: s }, s)));
  const arg = el('input', { name: 'arg', placeholder: 'offset, time or shift' });
  const plan = el('div', { 'data-testid': 'reset-plan' });
  function request(execute) {
    const body = { to: to.value, execute };
    if (topic.value === '') body.allTopics = true; else body.topics = { [topic.value]: [] };
    if (to.value === 'offset') body.offset = Number(arg.value);
    if (to.value === 'time') body.time = arg.value;
    if (to.value === 'shift') body.shift = Number(arg.value);
    return api('/api/groups/' + enc(group) + '/reset-offsets', { method: 'POST', body });
  }
  async function run(execute) {
    try {
      const r = await request(execute);
      plan.replaceChildren(el('p', { class: r.executed ? 'ok' : 'muted' }, r.executed ? 'Executed: offsets moved to ' + r.target : 'Preview (nothing changed yet): ' + r.target),
        table([{ title: 'topic', cell: c => c.topic }, { title: 'partition', num: true, cell: c => String(c.partition) },
          { title: 'current', num: true, cell: c => fmtInt(c.current) }, { title: 'new', num: true, cell: c => fmtInt(c.new) }], r.plan),
        // replaceChildren would show a null as the text "null": no button, no child.
        ...((!r.executed && writable()) ? [el('button', { type: 'button', class: 'danger', 'data-testid': 'reset-execute', on: { click: () => run(true) } }, 'Execute this plan')] : []));
    } catch (e) { plan.replaceChildren(failBox(e)); }
  }
  return el('div', {}, el('h2', {}, 'Reset offsets'),
    el('form', { 'data-testid': 'reset', on: { submit: ev => { ev.preventDefault(); run(false); } } },
      field('topic', topic), field('to', to), field('value', arg), el('button', { type: 'submit', class: 'secondary' }, 'Preview')), plan);
}

async function deadLettersPage() {
  const rows = await api('/api/deadletters');
  return [el('h1', {}, 'Dead letters'),
    el('p', { class: 'muted' }, 'Topics whose records carry the retry package\'s headers: dead-letter topics (a dead-letter reason) and retry topics.'),
    rows.length === 0 ? el('p', { class: 'muted' }, 'No dead-letter or retry topics found.') : table([
      { title: 'topic', cell: d => link('#/deadletters/' + enc(d.topic), d.topic) },
      { title: 'kind', cell: d => d.kind }, { title: 'origin', cell: d => d.origin || '-' },
      { title: 'records', num: true, cell: d => fmtInt(d.records) }, { title: 'last', cell: d => fmtTime(d.lastSeen) },
    ], rows, { 'data-testid': 'dlt-table' })];
}

async function deadLetterTopicPage(topic, params) {
  const t = await api('/api/topics/' + enc(topic));
  const q = new URLSearchParams(params);
  const part = el('select', { name: 'partition' }, t.partitions.map(p => el('option', { value: String(p.partition) }, String(p.partition))));
  part.value = q.get('partition') || '0';
  const holder = el('div', {});
  const result = el('div', { 'data-testid': 'replay-result' });
  const since = el('input', { name: 'since', placeholder: '2024-05-01T10:00:00Z' });
  let selected = new Map();
  let page = null;
  async function load(from) {
    const p = new URLSearchParams({ partition: part.value, limit: '50', start: from === undefined ? 'earliest' : 'offset' });
    if (from !== undefined) p.set('offset', String(from));
    try {
      page = await api('/api/topics/' + enc(topic) + '/messages?' + p.toString());
      selected = new Map();
      const pick = writable() ? [{ title: '', cell: r => el('input', { type: 'checkbox', 'data-offset': String(r.offset), on: { change: ev => {
        const k = r.partition + '@' + r.offset; if (ev.target.checked) selected.set(k, { partition: r.partition, offset: r.offset }); else selected.delete(k);
      } } }) }] : [];
      const dl = r => r.deadLetter || {};
      holder.replaceChildren(table(pick.concat([
        { title: 'offset', num: true, cell: r => String(r.offset) },
        { title: 'error', cell: r => el('pre', { 'data-testid': 'dl-error' }, dl(r).error || '-') },
        { title: 'reason', cell: r => dl(r).reason || dl(r).kind || '-' },
        { title: 'attempts', num: true, cell: r => String(dl(r).attempt || '-') },
        { title: 'origin', cell: r => dl(r).originalTopic ? el('span', { 'data-testid': 'dl-origin' }, dl(r).originalTopic + '[' + dl(r).originalPartition + ']@' + dl(r).originalOffset) : '-' },
        { title: 'first failure', cell: r => fmtTime(dl(r).firstFailure) },
        { title: 'key', cell: r => shown(r.key) },
        { title: 'value', cell: r => shown(r.value) },
        { title: '', cell: r => writable() ? el('button', { type: 'button', class: 'secondary', 'data-testid': 'replay-one', on: { click: () => replay({ records: [{ partition: r.partition, offset: r.offset }] }) } }, 'Replay') : null },
      ]), page.records, { 'data-testid': 'dl-table' }));
    } catch (e) { holder.replaceChildren(failBox(e)); }
  }
  async function replay(body) {
    result.replaceChildren(el('p', { class: 'muted' }, 'Replaying…'));
    try {
      const r = await api('/api/deadletters/' + enc(topic) + '/replay', { method: 'POST', body });
      result.replaceChildren(el('p', { class: r.error ? 'error' : 'ok' }, 'Replayed ' + r.replayed + ' record(s)' + (r.skipped ? ', passed over ' + r.skipped : '') + ' (progress kept by group ' + r.group + ')' + (r.error ? ': ' + r.error : '')),
        table([{ title: 'from', cell: x => x.from }, { title: 'to', cell: x => x.topic + '[' + x.partition + ']@' + x.offset }, { title: '', cell: x => x.error || '' }], r.records));
    } catch (e) { result.replaceChildren(failBox(e)); }
  }
  const out = [el('h1', {}, 'Dead letters in ', el('code', {}, topic)),
    el('div', { class: 'toolbar' }, field('partition', part),
      el('button', { type: 'button', on: { click: () => load() } }, 'Load'),
      el('button', { type: 'button', class: 'secondary', on: { click: () => page && load(page.next) } }, 'Next ▶'))];
  if (writable()) {
    out.push(el('div', { class: 'toolbar', 'data-testid': 'replay-actions' },
      el('button', { type: 'button', 'data-testid': 'replay-selected', on: { click: () => selected.size && replay({ records: [...selected.values()] }) } }, 'Replay selected'),
      field('since', since), el('button', { type: 'button', class: 'secondary', on: { click: () => since.value && replay({ since: since.value }) } }, 'Replay since'),
      el('button', { type: 'button', class: 'danger', on: { click: () => window.confirm('Replay every dead letter of ' + topic + '?') && replay({ all: true }) } }, 'Replay all')));
  }
  out.push(result, holder);
  load();
  return out;
}

// ---- routing ----

const routes = [
  [/^$/, () => overviewPage(), 'overview'],
  [/^topics$/, () => topicsPage(), 'topics'],
  [/^topic\/(.+)$/, m => topicPage(m[1]), 'topics'],
  [/^messages\/([^?]+)(?:\?(.*))?$/, (m, view) => messagesPage(m[1], m[2] || '', view), 'topics'],
  [/^groups$/, () => groupsPage(), 'groups'],
  [/^group\/(.+)$/, (m, view) => groupPage(m[1], view), 'groups'],
  [/^deadletters$/, () => deadLettersPage(), 'deadletters'],
  [/^deadletters\/([^?]+)(?:\?(.*))?$/, m => deadLetterTopicPage(m[1], m[2] || ''), 'deadletters'],
];

async function route() {
  for (const c of state.view.cleanups.splice(0)) c();
  const view = { cleanups: [] };
  state.view = view;
  const path = location.hash.replace(/^#\/?/, '');
  // Only the page the user went to last may fill the screen: one that
  // loads slower than a later one must not cover it.
  const show = (kids, nav) => {
    if (view !== state.view) return;
    main().replaceChildren(...[].concat(kids));
    document.body.dataset.page = nav || '';
    document.body.dataset.routed = path; // tests wait for this
  };
  for (const [re, page, nav] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const args = m.map((s, i) => (i > 0 && s !== undefined && i === 1) ? decodeURIComponent(s) : s);
    document.querySelectorAll('header nav a').forEach(a => a.classList.toggle('active', a.dataset.nav === nav));
    try {
      show(await page(args, view), nav);
    } catch (e) { show(failBox(e)); }
    return;
  }
  show(el('p', { class: 'error' }, 'No such page: ' + path));
}

async function start() {
  try { state.config = await api('/api/config'); } catch (e) { setStatus(e.message, true); }
  if (state.config.auth && !state.token) askToken();
  document.getElementById('mode').textContent = state.config.readOnly ? 'read-only' : '';
  window.addEventListener('hashchange', route);
  route();
}
start();
