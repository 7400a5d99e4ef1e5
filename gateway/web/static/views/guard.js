// The guard console: live alerts (acknowledge, assign, comment, clear, silence), roll call,
// access-log search and the shift hand-over.

import { api } from '../api.js';
import { h, fill, select, field, table } from '../dom.js';
import { t, label, fmtTime, fmtDuration, fmtNumber } from '../i18n.js';
import { can, tabbedPage, messageLine, showMessage, showError, busy, badge, localToIso, isoToLocal } from '../ui.js';

const TABS = [
  { id: 'list', permission: 'alerts.read', label: 'guard.tab.alerts' },
  { id: 'rollcall', permission: 'rollcall.read', label: 'guard.tab.rollcall' },
  { id: 'access', permission: 'access.read', label: 'guard.tab.access' },
  { id: 'handover', permission: 'alerts.read', label: 'guard.tab.handover' },
  { id: 'silences', permission: 'silences.read', label: 'guard.tab.silences' },
];

const SILENCE_DURATIONS = [1800, 3600, 4 * 3600, 24 * 3600];

export function mount(root, args, ctx) {
  const { active, body } = tabbedPage(root, {
    title: t('guard.title'), tabs: TABS, user: ctx.user, requested: args[0], href: (id) => `#/alerts/${id}`,
  });
  if (active === 'rollcall') return mountRollCall(body, args.slice(1), ctx);
  if (active === 'access') return mountAccess(body, ctx);
  if (active === 'handover') return mountHandover(body, ctx);
  if (active === 'silences') return mountSilences(body, ctx);
  return mountAlerts(body, ctx);
}

export function sevClass(alert) {
  return `sev-${alert.severity}`;
}

function alertStateLabel(alert) {
  if (alert.state === 'cleared' && alert.needs_review) return t('alert.state.needs_review');
  return label('alert.state', alert.state);
}

// --- alerts --------------------------------------------------------------------------------

function mountAlerts(root, ctx) {
  const { feed, user } = ctx;
  const mayAct = can(user, 'alerts.act');
  let building = sessionStorage.getItem('dormguard.alerts.building') || '';
  let selectedId = null;
  const knownBuildings = new Set();
  const rows = new Map();

  const buildingSelect = h('select', { id: 'alert-building', 'aria-label': t('common.building') });
  const counts = h('span', { class: 'counts muted' });
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty muted' }, t('alerts.none'));
  const listTable = h(
    'table',
    { class: 'grid alerts', id: 'alert-list' },
    h('thead', null, h('tr', null, [
      t('alert.col.severity'), t('alert.col.title'), t('common.building'), t('alert.col.state'),
      t('alert.col.count'), t('alert.col.last'), t('alert.col.assignee'), '',
    ].map((x) => h('th', null, x)))),
    tbody,
  );
  const detail = h('aside', { class: 'detail', id: 'alert-detail' }, h('p', { class: 'muted' }, t('alerts.pick')));
  const message = messageLine();
  // Kept across re-renders of the detail pane: an action's answer must outlive the live update
  // that the action itself causes.
  const note = messageLine();

  fill(
    root,
    h('div', { class: 'toolbar' }, field(t('common.building'), buildingSelect), counts),
    message,
    h('div', { class: 'split' }, h('section', { class: 'list' }, listTable, empty), detail),
  );

  function refreshBuildings(extra) {
    for (const b of extra) if (b) knownBuildings.add(b);
    const options = [['', t('common.all_buildings')], ...[...knownBuildings].sort().map((b) => [b, b])];
    if (buildingSelect.options.length === options.length) return;
    fill(buildingSelect, ...options.map(([value, text]) => h('option', { value, selected: value === building }, text)));
  }
  buildingSelect.addEventListener('change', () => {
    building = buildingSelect.value;
    sessionStorage.setItem('dormguard.alerts.building', building);
    renderList();
  });
  if (building) knownBuildings.add(building);
  if (can(user, 'rollcall.read')) {
    api('/api/occupancy').then((list) => refreshBuildings(list.map((b) => b.building)), () => {});
  }

  async function act(alertId, path, body, button) {
    const target = alertId === selectedId ? note : message;
    const updated = await busy(button, () => api(`/api/alerts/${alertId}/${path}`, { method: 'POST', body }), target);
    if (updated) {
      feed.applyLocal(updated);
      if (alertId === selectedId) loadDetail();
    }
    return updated;
  }

  function actionButtons(alert) {
    if (!mayAct) return [];
    const buttons = [];
    if (alert.state === 'active' || alert.needs_review) {
      buttons.push(h('button', { type: 'button', class: 'primary', dataset: { action: 'ack' }, onclick: (e) => { e.stopPropagation(); act(alert.id, 'ack', undefined, e.currentTarget); } }, t('alert.ack')));
    }
    if (alert.state !== 'cleared') {
      buttons.push(h('button', { type: 'button', dataset: { action: 'clear' }, onclick: (e) => { e.stopPropagation(); act(alert.id, 'clear', undefined, e.currentTarget); } }, t('alert.clear')));
    }
    return buttons;
  }

  function fillRow(tr, alert) {
    fill(
      tr,
      h('td', null, badge(sevClass(alert), label('severity', alert.severity_name))),
      h('td', { class: 'title' }, h('strong', null, label('alert.type', alert.type)), h('div', { class: 'muted small' }, alert.title)),
      h('td', null, alert.building),
      h('td', { class: 'state' }, alertStateLabel(alert), alert.silenced ? h('div', { class: 'muted small' }, t('alert.silenced')) : null),
      h('td', null, `×${alert.count}`),
      h('td', null, fmtTime(alert.last_at)),
      h('td', null, alert.assignee || '–'),
      h('td', { class: 'row-actions' }, actionButtons(alert)),
    );
  }

  function renderList() {
    const all = feed.sorted();
    refreshBuildings(all.map((a) => a.building));
    const list = building ? all.filter((a) => a.building === building) : all;
    const ids = new Set();
    let previous = null;
    for (const alert of list) {
      ids.add(alert.id);
      let entry = rows.get(alert.id);
      if (!entry) {
        const tr = h('tr', { dataset: { alertId: String(alert.id) }, tabindex: '0' });
        tr.addEventListener('click', () => selectAlert(alert.id));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') selectAlert(alert.id); });
        entry = { tr, version: null };
        rows.set(alert.id, entry);
      }
      const version = `${alert.updated_at}|${alert.state}|${alert.count}`;
      if (entry.version !== version) {
        fillRow(entry.tr, alert);
        entry.version = version;
      }
      const tr = entry.tr;
      tr.className = [sevClass(alert), `state-${alert.state}`, alert.state === 'active' && !alert.silenced ? 'flash' : '', alert.silenced ? 'silenced' : '', alert.id === selectedId ? 'selected' : ''].filter(Boolean).join(' ');
      tr.dataset.state = alert.state;
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== tr) tbody.insertBefore(tr, expected);
      previous = tr;
    }
    for (const [id, entry] of rows) {
      if (!ids.has(id)) {
        entry.tr.remove();
        rows.delete(id);
      }
    }
    empty.hidden = list.length > 0;
    const unacked = list.filter((a) => a.state === 'active').length;
    fill(counts, t('alerts.counts', { open: list.length, unacked }));
  }

  async function loadDetail() {
    if (selectedId === null) return;
    const id = selectedId;
    try {
      const alert = await api(`/api/alerts/${id}`);
      if (id === selectedId) renderDetail(alert);
    } catch (err) {
      if (id === selectedId) {
        const msg = messageLine();
        showError(msg, err);
        fill(detail, msg);
      }
    }
  }

  function selectAlert(id) {
    selectedId = id;
    showMessage(note, '');
    for (const [rowId, entry] of rows) entry.tr.classList.toggle('selected', rowId === id);
    fill(detail, h('p', { class: 'muted' }, t('common.loading')));
    loadDetail();
  }

  function renderDetail(alert) {
    const facts = [
      [t('alert.col.severity'), label('severity', alert.severity_name)],
      [t('alert.col.type'), label('alert.type', alert.type)],
      [t('alert.col.state'), alertStateLabel(alert)],
      [t('common.building'), alert.building],
      [t('alert.col.originator'), alert.originator],
      [t('alert.col.count'), String(alert.count)],
      [t('alert.col.first'), fmtTime(alert.first_at)],
      [t('alert.col.last'), fmtTime(alert.last_at)],
      [t('alert.col.acked'), alert.acked_by ? `${alert.acked_by} · ${fmtTime(alert.acked_at)}` : '–'],
      [t('alert.col.assignee'), alert.assignee || '–'],
      [t('alert.col.escalation'), String(alert.escalation_level)],
      [t('alert.silenced'), alert.silenced ? t('common.yes') : t('common.no')],
    ];
    for (const [name, value] of Object.entries(alert.detail || {})) {
      if (value === null || value === undefined) continue;
      facts.push([label('detail', name), typeof value === 'object' ? JSON.stringify(value) : String(value)]);
    }
    const parts = [
      h('h2', null, label('alert.type', alert.type)),
      h('p', null, alert.title),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      note,
    ];
    if (mayAct) {
      parts.push(h('div', { class: 'actions' }, actionButtons(alert)));
      if (alert.state !== 'cleared') {
        const assignee = h('input', { type: 'text', name: 'assignee', maxlength: '64', value: alert.assignee || '', placeholder: t('alert.assign.placeholder') });
        parts.push(
          h('form', { class: 'inline', id: 'assign-form', onsubmit: (e) => { e.preventDefault(); act(alert.id, 'assign', { assignee: assignee.value.trim() || null }, e.submitter); } },
            field(t('alert.assign'), assignee), h('button', { type: 'submit' }, t('alert.assign.save'))),
        );
      }
      const text = h('textarea', { name: 'comment', rows: '2', maxlength: '2000', required: true });
      parts.push(
        h('form', { class: 'stack', id: 'comment-form', onsubmit: async (e) => { e.preventDefault(); if (await act(alert.id, 'comment', { text: text.value }, e.submitter)) text.value = ''; } },
          field(t('alert.comment'), text), h('button', { type: 'submit' }, t('alert.comment.add'))),
      );
      if (can(user, 'silences.write')) {
        const duration = select({ name: 'duration' }, SILENCE_DURATIONS.map((s) => [String(s), fmtDuration(s)]), '3600');
        const reason = h('input', { type: 'text', name: 'reason', maxlength: '300', required: true, placeholder: t('alert.silence.reason') });
        parts.push(
          h('form', { class: 'inline', id: 'silence-form', onsubmit: async (e) => {
            e.preventDefault();
            const done = await busy(e.submitter, () => api('/api/silences', { method: 'POST', body: { originator: alert.originator, types: [alert.type], duration_s: Number(duration.value), reason: reason.value } }), note);
            if (done) showMessage(note, t('alert.silence.done', { until: fmtTime(done.ends_at) }), 'ok');
          } },
          field(t('alert.silence'), duration), reason, h('button', { type: 'submit' }, t('alert.silence.add'))),
        );
      }
    }
    if (alert.comments && alert.comments.length) {
      parts.push(h('h3', null, t('alert.comments')), h('ul', { class: 'log' }, alert.comments.map((c) => h('li', null, h('span', { class: 'muted' }, `${fmtTime(c.at)} · ${c.author}: `), c.text))));
    }
    if (alert.history && alert.history.length) {
      parts.push(h('h3', null, t('alert.history')), h('ul', { class: 'log' }, alert.history.map((e) => h('li', null, h('span', { class: 'muted' }, `${fmtTime(e.at)} · `), label('alert.action', e.action), e.actor ? ` · ${e.actor}` : '', e.text ? ` · ${e.text}` : ''))));
    }
    fill(detail, ...parts);
  }

  let detailTimer = null;
  const onAlert = (event) => {
    renderList();
    if (event.detail.alert.id === selectedId) {
      clearTimeout(detailTimer);
      detailTimer = setTimeout(loadDetail, 150);
    }
  };
  const onSnapshot = () => renderList();
  feed.addEventListener('alert', onAlert);
  feed.addEventListener('snapshot', onSnapshot);
  renderList();
  return () => {
    clearTimeout(detailTimer);
    feed.removeEventListener('alert', onAlert);
    feed.removeEventListener('snapshot', onSnapshot);
  };
}

// --- roll call -------------------------------------------------------------------------------

function mountRollCall(root, args, ctx) {
  const buttons = h('div', { class: 'buttons', id: 'rollcall-buildings' }, h('span', { class: 'muted' }, t('common.loading')));
  const message = messageLine();
  const result = h('section', { id: 'rollcall-result' });
  fill(root, h('p', { class: 'muted' }, t('rollcall.hint')), buttons, message, result);
  let alive = true;

  async function fireAlarm(building, button) {
    if (!window.confirm(t('fire.confirm', { building }))) return;
    const done = await busy(button, () => api(`/api/buildings/${encodeURIComponent(building)}/fire-alarm`, { method: 'POST' }), message);
    if (!done || !alive) return;
    const failed = done.gates.filter((g) => !g.sent);
    showMessage(message, failed.length
      ? t('fire.partial', { sent: done.gates.length - failed.length, failed: failed.map((g) => `${g.gate_key} (${g.error || '?'})`).join(', ') })
      : t('fire.sent', { count: done.gates.length }), failed.length ? 'error' : 'ok');
    render(done.roll_call);
  }

  async function show(building, button) {
    const call = await busy(button, () => api(`/api/occupancy/${encodeURIComponent(building)}/roll-call`), message);
    if (!call || !alive) return;
    for (const b of buttons.querySelectorAll('button')) b.classList.toggle('active', b.dataset.building === building);
    render(call);
  }

  function render(call) {
    fill(
      result,
      can(ctx.user, 'firealarm')
        ? h('p', null, h('button', { type: 'button', class: 'danger', id: 'fire-alarm', onclick: (e) => fireAlarm(call.building, e.currentTarget) }, t('fire.button', { building: call.building })))
        : null,
      h('h2', null, t('rollcall.title', { building: call.building, count: call.count })),
      h('p', { class: 'muted' }, t('rollcall.generated', { at: fmtTime(call.generated_at) })),
      call.people.length === 0
        ? h('p', { class: 'empty muted' }, t('rollcall.empty'))
        : table(
          [t('person.id'), t('person.name'), t('rollcall.since'), t('rollcall.hours'), t('rollcall.gate'), t('rollcall.irregular')],
          call.people.map((p) => [p.person_id, p.name, fmtTime(p.since), fmtNumber(p.hours_inside, 1), p.gate_id, p.irregular ? t('rollcall.check') : '']),
          { class: 'grid', id: 'rollcall-table' },
        ),
    );
  }

  api('/api/occupancy').then(
    (list) => {
      if (!alive) return;
      fill(buttons, ...list.map((b) => h('button', { type: 'button', dataset: { building: b.building }, onclick: (e) => show(b.building, e.currentTarget) }, t('rollcall.button', { building: b.building, inside: b.inside }))));
      if (list.length === 0) fill(buttons, h('p', { class: 'muted' }, t('rollcall.no_buildings')));
      if (args[0]) show(args[0], null);
    },
    (err) => showError(message, err),
  );
  return () => { alive = false; };
}

// --- access log ------------------------------------------------------------------------------

// "Not this person": a face decision that named someone may be reported as a wrong match
// (docs/decisions/0014). The gate hands over the probe; the next gallery refuses it for them.
function wrongMatchButton(r, message) {
  if (r.method !== 'face' || !r.person_id) return '';
  if (r.wrong_match && r.wrong_match !== 'failed') {
    return h('span', { class: 'muted wrong-match-reported' }, `${t('access.wrong_match_reported')} · ${label('wrong_match', r.wrong_match)}`);
  }
  return h('button', { type: 'button', class: 'danger small wrong-match', dataset: { event: r.event_id }, onclick: async (e) => {
    const button = e.currentTarget;
    if (!window.confirm(t('access.wrong_match_confirm', { person: r.person_id, time: fmtTime(r.ts) }))) return;
    const done = await busy(button, () => api(`/api/access/${encodeURIComponent(r.event_id)}/wrong-match`, { method: 'POST', body: {} }), message);
    if (!done) return;
    showMessage(message, t('access.wrong_match_sent', { person: r.person_id }), 'ok');
    button.replaceWith(h('span', { class: 'muted wrong-match-reported' }, t('access.wrong_match_reported')));
  } }, t('access.not_this_person'));
}

function mountAccess(root, ctx) {
  const mayReport = can(ctx.user, 'access.report');
  const inputs = {
    person: h('input', { type: 'text', name: 'person', maxlength: '64' }),
    building: h('input', { type: 'text', name: 'building', maxlength: '64' }),
    gate: h('input', { type: 'text', name: 'gate', maxlength: '64' }),
    decision: select({ name: 'decision' }, [['', t('common.any')], ['granted', label('decision', 'granted')], ['denied', label('decision', 'denied')]], ''),
    method: select({ name: 'method' }, [['', t('common.any')], ['face', label('method', 'face')], ['card', label('method', 'card')], ['pin', label('method', 'pin')]], ''),
    since: h('input', { type: 'datetime-local', name: 'since', value: isoToLocal(new Date(Date.now() - 24 * 3600 * 1000).toISOString()) }),
    until: h('input', { type: 'datetime-local', name: 'until' }),
  };
  const message = messageLine();
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, t('access.more'));
  const summary = h('p', { class: 'muted' });
  let cursor = null;
  let shown = 0;

  const row = (r) => h('tr', { class: r.decision === 'denied' ? 'denied' : null, dataset: { event: r.event_id } },
    [fmtTime(r.ts), r.building, r.gate_id, label('direction', r.direction), label('decision', r.decision), label('method', r.method), r.person_id || '–', label('reason', r.reason)]
      .concat(mayReport ? [wrongMatchButton(r, message)] : []).map((x) => h('td', null, x)));

  async function search(button, append) {
    const query = {
      person: inputs.person.value.trim(), building: inputs.building.value.trim(), gate: inputs.gate.value.trim(),
      decision: inputs.decision.value, method: inputs.method.value,
      since: localToIso(inputs.since.value), until: localToIso(inputs.until.value), limit: 100,
      cursor: append ? cursor : null,
    };
    const page = await busy(button, () => api('/api/access', { query }), message);
    if (!page) return;
    if (!append) { tbody.replaceChildren(); shown = 0; }
    const frag = document.createDocumentFragment();
    for (const r of page.items) frag.append(row(r));
    tbody.append(frag);
    shown += page.items.length;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    fill(summary, shown ? t('access.shown', { count: shown }) : t('access.none'));
  }

  const form = h('form', { class: 'filters', id: 'access-form', onsubmit: (e) => { e.preventDefault(); search(e.submitter, false); } },
    field(t('access.person'), inputs.person), field(t('common.building'), inputs.building), field(t('access.gate'), inputs.gate),
    field(t('access.decision'), inputs.decision), field(t('access.method'), inputs.method),
    field(t('common.since'), inputs.since), field(t('common.until'), inputs.until),
    h('button', { type: 'submit', class: 'primary' }, t('common.search')));
  more.addEventListener('click', (e) => search(e.currentTarget, true));
  fill(root, form, message, summary,
    h('table', { class: 'grid', id: 'access-table' },
      h('thead', null, h('tr', null, [t('common.time'), t('common.building'), t('access.gate'), t('access.direction'), t('access.decision'), t('access.method'), t('access.person'), t('access.reason')].concat(mayReport ? [''] : []).map((x) => h('th', null, x)))),
      tbody),
    more);
  search(null, false);
  return () => {};
}

// --- hand-over -------------------------------------------------------------------------------

function mountHandover(root, ctx) {
  const since = h('input', { type: 'datetime-local', name: 'since', value: isoToLocal(new Date(Date.now() - 12 * 3600 * 1000).toISOString()) });
  const message = messageLine();
  const out = h('section', { id: 'handover' });
  let alive = true;

  const alertList = (alerts, withReview) => h('ul', { class: 'alert-list' }, alerts.map((a) => h('li', { class: sevClass(a) },
    badge(sevClass(a), label('severity', a.severity_name)), ' ', h('strong', null, label('alert.type', a.type)), ' ', a.title, ' ',
    h('span', { class: 'muted' }, `${a.building} · ${alertStateLabel(a)} · ${fmtTime(a.last_at)}${a.assignee ? ` · ${a.assignee}` : ''}`),
    withReview && can(ctx.user, 'alerts.act')
      ? h('button', { type: 'button', onclick: async (e) => { if (await busy(e.currentTarget, () => api(`/api/alerts/${a.id}/ack`, { method: 'POST' }), message)) load(null); } }, t('handover.review'))
      : null)));

  async function load(button) {
    const view = await busy(button, () => api('/api/alerts/handover', { query: { since: localToIso(since.value) } }), message);
    if (!view || !alive) return;
    const cards = [
      ['handover.open', view.open_count], ['handover.unacked', view.unacknowledged_count],
      ['handover.silenced', view.silenced_count], ['handover.escalated', view.escalated_count],
      ['handover.unassigned', view.unassigned_count],
    ];
    const parts = [
      h('div', { class: 'cards' },
        cards.map(([key, n]) => h('div', { class: 'card' }, h('div', { class: 'big' }, String(n)), h('div', { class: 'muted' }, t(key)))),
        h('div', { class: 'card' }, h('div', { class: 'big' }, view.oldest_open_age_s === null ? '–' : fmtDuration(view.oldest_open_age_s)), h('div', { class: 'muted' }, t('handover.oldest')))),
      h('p', { class: 'muted' }, t('handover.window', { since: fmtTime(view.since), at: fmtTime(view.generated_at) })),
    ];
    const types = Object.entries(view.by_type || {});
    if (types.length) parts.push(h('p', null, types.map(([type, n]) => `${label('alert.type', type)}: ${n}`).join(' · ')));
    for (const [severity, alerts] of Object.entries(view.open_by_severity || {})) {
      if (alerts.length) parts.push(h('h3', null, `${t('handover.open')} · ${label('severity', severity)}`), alertList(alerts, false));
    }
    parts.push(h('h3', null, t('handover.needs_review')), view.needs_review.length ? alertList(view.needs_review, true) : h('p', { class: 'muted' }, t('common.none')));
    parts.push(h('h3', null, t('handover.cleared')), view.cleared_since.length ? alertList(view.cleared_since, false) : h('p', { class: 'muted' }, t('common.none')));
    fill(out, ...parts);
  }

  fill(root,
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(e.submitter); } },
      field(t('handover.since'), since), h('button', { type: 'submit', class: 'primary' }, t('common.refresh'))),
    message, out);
  load(null);
  return () => { alive = false; };
}


/** Current and upcoming silences (maintenance windows), each with an "end now" button. */
function mountSilences(root, ctx) {
  const message = messageLine();
  const out = h('section', { id: 'silences' });
  const writer = can(ctx.user, 'silences.write');
  let alive = true;

  async function end(button, silence) {
    const done = await busy(button, () => api(`/api/silences/${silence.id}`, { method: 'DELETE' }), message);
    if (done) { await load(); showMessage(message, t('silences.ended'), 'ok'); }
  }

  async function load() {
    const silences = await busy(null, () => api('/api/silences'), message);
    if (!silences || !alive) return;
    if (!silences.length) { fill(out, h('p', { class: 'muted' }, t('common.none'))); return; }
    const headers = [t('silences.source'), t('silences.types'), t('silences.from'), t('silences.until'), t('silences.reason'), t('silences.by'), ''];
    const rows = silences.map((x) => h('tr', { 'data-silence-id': String(x.id) }, [
      x.originator,
      x.types.length ? x.types.map((type) => label('alert.type', type)).join(', ') : t('silences.all_types'),
      fmtTime(x.starts_at), fmtTime(x.ends_at), x.reason, x.created_by,
      writer ? h('button', { type: 'button', class: 'end-silence', onclick: (e) => end(e.currentTarget, x) }, t('silences.end')) : '',
    ].map((cell) => h('td', null, cell))));
    fill(out, table(headers, rows, { class: 'grid', id: 'silence-table' }));
  }

  fill(root, message, out);
  load();
  return () => { alive = false; };
}
