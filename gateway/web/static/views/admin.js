// Administration: people (and face enrolment with consent), gates and their commands, the
// device list, user accounts with their roles, and the login throttles. Each tab shows only to
// the roles allowed.

import { api, keyPath } from '../api.js';
import { h, fill, select, field, table, splitList } from '../dom.js';
import { t, label, fmtTime, fmtNumber } from '../i18n.js';
import { can, tabbedPage, messageLine, showMessage, showError, busy, badge, localToIso, isoToLocal } from '../ui.js';
import { deviceHref, statusText, faultText } from './board.js';

const TABS = [
  { id: 'people', permission: 'people.read', label: 'admin.tab.people' },
  { id: 'gates', permission: 'gates.read', label: 'admin.tab.gates' },
  { id: 'devices', permission: 'devices.read', label: 'admin.tab.devices' },
  { id: 'users', permission: 'users.admin', label: 'admin.tab.users' },
  { id: 'throttles', permission: 'users.admin', label: 'admin.tab.throttles' },
];

export const ADMIN_PERMISSIONS = TABS.map((tab) => tab.permission);

const ROLES = ['admin', 'guard', 'facilities', 'counsellor', 'auditor'];
const KINDS = ['student', 'staff', 'visitor'];
const PERSON_STATUSES = ['active', 'suspended', 'graduated'];
const COMMANDS = ['unlock', 'lock', 'hold_open', 'release', 'ping'];

export function mount(root, args, ctx) {
  const { active, body } = tabbedPage(root, {
    title: t('admin.title'), tabs: TABS, user: ctx.user, requested: args[0], href: (id) => `#/admin/${id}`,
  });
  if (active === 'gates') return mountGates(body, args.slice(1), ctx);
  if (active === 'devices') return mountDevices(body);
  if (active === 'users') return mountUsers(body, ctx);
  if (active === 'throttles') return mountThrottles(body);
  return mountPeople(body, args.slice(1), ctx);
}

const yesNo = (value) => (value ? t('common.yes') : t('common.no'));

// --- people ----------------------------------------------------------------------------------

function mountPeople(root, args, ctx) {
  const mayWrite = can(ctx.user, 'people.write');
  const q = h('input', { type: 'search', name: 'q', maxlength: '64', placeholder: t('people.search') });
  const building = h('input', { type: 'text', name: 'building', maxlength: '64' });
  const status = select({ name: 'status' }, [['', t('common.any')], ...PERSON_STATUSES.map((s) => [s, label('person.status', s)])], '');
  const message = messageLine();
  const list = h('section', { id: 'people-list' });
  const editor = h('section', { class: 'editor', id: 'person-editor' });
  let alive = true;

  async function search(button) {
    const people = await busy(button, () => api('/api/people', { query: { q: q.value.trim(), building: building.value.trim(), status: status.value, limit: 500 } }), message);
    if (!people || !alive) return;
    const rows = people.map((p) => {
      const tr = h('tr', { dataset: { personId: p.person_id }, tabindex: '0', class: 'clickable' },
        [p.person_id, p.name, label('person.kind', p.kind), label('person.status', p.status), p.buildings.join(', '), p.cards.join(', ') || '–',
          yesNo(p.has_pin), p.face_opt_out ? t('people.opted_out') : yesNo(p.face_enrolled), p.counsellor || '–'].map((x) => h('td', null, x)));
      tr.addEventListener('click', () => { window.location.hash = `#/admin/people/${encodeURIComponent(p.person_id)}`; });
      return tr;
    });
    fill(list,
      h('p', { class: 'muted' }, t('people.count', { count: people.length })),
      table([t('person.id'), t('person.name'), t('person.kind'), t('person.status'), t('person.buildings'), t('person.cards'), t('person.pin'), t('person.face'), t('person.counsellor')], rows, { class: 'grid', id: 'people-table' }));
  }

  fill(
    root,
    h('form', { class: 'filters', id: 'people-search', onsubmit: (e) => { e.preventDefault(); search(e.submitter); } },
      field(t('people.search'), q), field(t('common.building'), building), field(t('person.status'), status),
      h('button', { type: 'submit', class: 'primary' }, t('common.search')),
      mayWrite ? h('a', { class: 'button', href: '#/admin/people/new', id: 'person-new' }, t('people.new')) : null),
    message,
    h('div', { class: 'split' }, list, editor),
  );
  search(null);
  if (args[0] === 'new' && mayWrite) renderPersonForm(editor, null, () => search(null));
  else if (args[0]) loadPerson(editor, args[0], ctx, () => search(null));
  return () => { alive = false; };
}

async function loadPerson(editor, personId, ctx, onSaved) {
  fill(editor, h('p', { class: 'muted' }, t('common.loading')));
  try {
    const person = await api(`/api/people/${encodeURIComponent(personId)}`);
    if (can(ctx.user, 'people.write')) {
      renderPersonForm(editor, person, onSaved);
      if (person.kind === 'student') editor.append(studentAccountPanel(person));
      editor.append(enrolmentPanel(person));
    } else {
      renderPersonFacts(editor, person);
    }
  } catch (err) {
    const msg = messageLine();
    showError(msg, err);
    fill(editor, msg);
  }
}

function renderPersonFacts(editor, p) {
  const facts = [
    [t('person.id'), p.person_id], [t('person.name'), p.name], [t('person.kind'), label('person.kind', p.kind)],
    [t('person.status'), label('person.status', p.status)], [t('person.buildings'), p.buildings.join(', ') || '–'],
    [t('person.gates'), p.gates.join(', ') || t('people.all_gates')], [t('person.cards'), p.cards.join(', ') || '–'],
    [t('person.pin'), yesNo(p.has_pin)], [t('person.face'), p.face_opt_out ? t('people.opted_out') : yesNo(p.face_enrolled)],
    [t('person.counsellor'), p.counsellor || '–'], [t('person.valid_from'), fmtTime(p.valid_from) || '–'], [t('person.valid_until'), fmtTime(p.valid_until) || '–'],
  ];
  fill(editor, h('h2', null, `${p.person_id} · ${p.name}`), h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
}

function renderPersonForm(editor, person, onSaved) {
  const creating = person === null;
  const p = person || { person_id: '', name: '', kind: 'student', status: 'active', buildings: [], gates: [], cards: [], counsellor: '', face_opt_out: false, valid_from: null, valid_until: null };
  const inputs = {
    person_id: h('input', { type: 'text', name: 'person_id', required: true, maxlength: '64', pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}', value: p.person_id, disabled: !creating }),
    name: h('input', { type: 'text', name: 'name', maxlength: '128', value: p.name }),
    kind: select({ name: 'kind' }, KINDS.map((k) => [k, label('person.kind', k)]), p.kind),
    status: select({ name: 'status' }, PERSON_STATUSES.map((s) => [s, label('person.status', s)]), p.status),
    buildings: h('input', { type: 'text', name: 'buildings', value: p.buildings.join(', ') }),
    gates: h('input', { type: 'text', name: 'gates', value: p.gates.join(', '), placeholder: t('people.all_gates') }),
    cards: h('input', { type: 'text', name: 'cards', value: creating ? '' : p.cards.join(', ') }),
    pin: h('input', { type: 'password', name: 'pin', inputmode: 'numeric', autocomplete: 'new-password', maxlength: '8', placeholder: creating ? '' : t('people.pin_unchanged') }),
    counsellor: h('input', { type: 'text', name: 'counsellor', maxlength: '64', value: p.counsellor || '' }),
    valid_from: h('input', { type: 'datetime-local', name: 'valid_from', value: isoToLocal(p.valid_from) }),
    valid_until: h('input', { type: 'datetime-local', name: 'valid_until', value: isoToLocal(p.valid_until) }),
    face_opt_out: h('input', { type: 'checkbox', name: 'face_opt_out', checked: p.face_opt_out }),
  };
  const message = messageLine();

  function body() {
    const out = {
      name: inputs.name.value.trim(),
      kind: inputs.kind.value,
      status: inputs.status.value,
      buildings: splitList(inputs.buildings.value),
      gates: splitList(inputs.gates.value),
      counsellor: inputs.counsellor.value.trim() || null,
      valid_from: localToIso(inputs.valid_from.value) || null,
      valid_until: localToIso(inputs.valid_until.value) || null,
      face_opt_out: inputs.face_opt_out.checked,
    };
    // Admins see the full card numbers, so the field holds the real list: send it when edited.
    const cards = splitList(inputs.cards.value);
    if (creating || cards.join(',') !== p.cards.join(',')) out.cards = cards;
    if (inputs.pin.value) out.pin = inputs.pin.value;
    if (creating) out.person_id = inputs.person_id.value.trim();
    return out;
  }

  const form = h('form', { class: 'stack', id: 'person-form', onsubmit: async (e) => {
    e.preventDefault();
    const saved = await busy(e.submitter, () => (creating
      ? api('/api/people', { method: 'POST', body: body() })
      : api(`/api/people/${encodeURIComponent(p.person_id)}`, { method: 'PATCH', body: body() })), message);
    if (!saved) return;
    const pending = saved.gallery_pending && saved.gallery_pending.length ? ` ${t('people.gallery_pending', { gates: saved.gallery_pending.join(', ') })}` : '';
    showMessage(message, `${t('people.saved', { id: saved.person_id })}${pending}`, 'ok');
    onSaved();
    if (creating) window.location.hash = `#/admin/people/${encodeURIComponent(saved.person_id)}`;
  } },
  h('h2', null, creating ? t('people.new') : t('people.edit', { id: p.person_id })),
  field(t('person.id'), inputs.person_id), field(t('person.name'), inputs.name), field(t('person.kind'), inputs.kind),
  field(t('person.status'), inputs.status), field(t('person.buildings'), inputs.buildings), field(t('person.gates'), inputs.gates),
  field(t('person.cards'), inputs.cards), field(t('person.pin'), inputs.pin), field(t('person.counsellor'), inputs.counsellor),
  field(t('person.valid_from'), inputs.valid_from), field(t('person.valid_until'), inputs.valid_until),
  h('label', { class: 'check' }, inputs.face_opt_out, ' ', t('person.face_opt_out')),
  h('p', { class: 'muted small' }, t('people.list_hint')),
  h('button', { type: 'submit', class: 'primary' }, t('common.save')),
  message);
  fill(editor, form);
}

/** The student page's sign-in: a one-time code, shown once here to print on the enrolment slip. */
function studentAccountPanel(person) {
  const message = messageLine();
  const slip = h('div', { id: 'student-code', class: 'slip', hidden: true });
  const issue = h('button', { type: 'button', id: 'student-code-issue', onclick: async (e) => {
    if (!window.confirm(t('student_account.confirm', { id: person.person_id }))) return;
    const done = await busy(e.currentTarget, () => api(`/api/people/${encodeURIComponent(person.person_id)}/student-account`, { method: 'POST' }), message);
    if (!done) return;
    fill(slip, h('dl', { class: 'facts' },
      [[t('student_account.username'), done.username], [t('student_account.code'), h('code', { id: 'student-code-value' }, done.code)]]
        .map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
    h('p', { class: 'muted small' }, t('student_account.once')));
    slip.hidden = false;
    showMessage(message, done.created ? t('student_account.created') : t('student_account.replaced'), 'ok');
  } }, t('student_account.issue'));
  return h('section', { class: 'student-account', id: 'student-account' },
    h('h2', null, t('student_account.title')), h('p', { class: 'muted' }, t('student_account.hint')), issue, slip, message);
}

/** Consent first (recorded with its evidence), then the photos; the status below. */
/** The wrong-match reports that named this person: when, where, by whom, what became of it. */
function wrongMatches(reports) {
  if (!reports.length) return h('p', { class: 'muted', id: 'wrong-matches-none' }, t('enrol.wrong_matches_none'));
  return h('div', { class: 'table-wrap' }, h('h3', null, t('enrol.wrong_matches')),
    table([t('common.time'), t('access.gate'), t('enrol.wrong_match_by'), t('enrol.wrong_match_state')],
      reports.map((r) => [fmtTime(r.reported_at), r.gate_key, r.reported_by, label('wrong_match', r.state)]), { class: 'grid compact', id: 'wrong-matches' }));
}

function enrolmentPanel(person) {
  const panel = h('section', { class: 'enrolment', id: 'enrolment' });
  const statusBox = h('div', { id: 'enrolment-status' });
  const message = messageLine();
  const id = encodeURIComponent(person.person_id);

  async function loadStatus() {
    try {
      const s = await api(`/api/people/${id}/enrolment`);
      fill(statusBox, h('dl', { class: 'facts' },
        [[t('enrol.consent'), yesNo(s.face_consent)], [t('enrol.templates'), String(s.templates)], [t('enrol.photos_kept'), String(s.photos_kept)],
          [t('enrol.pending_erasures'), String(s.pending_erasures)],
          [t('enrol.deliveries'), s.deliveries.map((d) => `${d.gate_key}: v${d.version} ${label('delivery', d.state)}`).join('; ') || '–']]
          .map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      wrongMatches(s.wrong_matches));
    } catch (err) {
      showError(message, err);
    }
  }

  if (person.face_opt_out) {
    fill(panel, h('h2', null, t('enrol.title')), h('p', { class: 'muted' }, t('enrol.opted_out')));
    return panel;
  }
  const granted = h('input', { type: 'checkbox', name: 'granted', checked: true });
  const evidence = h('textarea', { name: 'evidence', rows: '2', maxlength: '2000', placeholder: t('enrol.evidence_hint') });
  const files = h('input', { type: 'file', name: 'files', multiple: true, accept: 'image/jpeg,image/png' });
  const report = h('div', { id: 'enrolment-report' });

  const consentForm = h('form', { class: 'stack', id: 'consent-form', onsubmit: async (e) => {
    e.preventDefault();
    const done = await busy(e.submitter, () => api(`/api/people/${id}/consent`, { method: 'POST', body: { granted: granted.checked, evidence: evidence.value } }), message);
    if (done) {
      showMessage(message, done.consent.granted ? t('enrol.consent_recorded') : t('enrol.consent_withdrawn'), 'ok');
      loadStatus();
    }
  } },
  h('h3', null, t('enrol.step_consent')),
  h('label', { class: 'check' }, granted, ' ', t('enrol.granted')),
  field(t('enrol.evidence'), evidence),
  h('button', { type: 'submit' }, t('enrol.record_consent')));

  const photoForm = h('form', { class: 'stack', id: 'photo-form', onsubmit: async (e) => {
    e.preventDefault();
    if (!files.files.length) { showMessage(message, t('enrol.pick_photos')); return; }
    const form = new FormData();
    for (const file of files.files) form.append('files', file, file.name);
    const result = await busy(e.submitter, () => api(`/api/people/${id}/photos`, { method: 'POST', form }), message);
    if (!result) return;
    showMessage(message, t('enrol.accepted', { accepted: result.accepted, rejected: result.rejected, total: result.templates_total }), 'ok');
    fill(report, table([t('enrol.photo'), t('enrol.result'), t('enrol.faces'), t('enrol.face_px'), t('enrol.sharpness')],
      result.photos.map((ph) => [ph.name, ph.ok ? t('enrol.ok') : (ph.error || t('enrol.rejected')), ph.faces ?? '–', ph.face_px ?? '–', ph.sharpness === null ? '–' : fmtNumber(ph.sharpness, 0)])));
    files.value = '';
    loadStatus();
  } },
  h('h3', null, t('enrol.step_photos')),
  field(t('enrol.photos'), files),
  h('button', { type: 'submit', class: 'primary' }, t('enrol.upload')));

  const erase = h('button', { type: 'button', class: 'danger', onclick: async (e) => {
    if (!window.confirm(t('enrol.erase_confirm', { id: person.person_id }))) return;
    const done = await busy(e.currentTarget, () => api(`/api/people/${id}/face`, { method: 'DELETE' }), message);
    if (done) { showMessage(message, t('enrol.erased', { templates: done.templates_deleted }), 'ok'); loadStatus(); }
  } }, t('enrol.erase'));

  fill(panel, h('h2', null, t('enrol.title')), statusBox, consentForm, photoForm, report, erase, message);
  loadStatus();
  return panel;
}

// --- gates -----------------------------------------------------------------------------------

function mountGates(root, args, ctx) {
  const message = messageLine();
  const list = h('section', { id: 'gates-list' });
  const panel = h('section', { class: 'editor', id: 'gate-panel' });
  let alive = true;

  async function load() {
    try {
      const gates = await api('/api/gates');
      if (!alive) return;
      const rows = gates.map((g) => {
        const beat = g.heartbeat || {};
        const online = g.online === null ? t('gate.unknown') : g.online ? t('gate.online') : t('gate.offline');
        const tr = h('tr', { dataset: { gateKey: g.gate_key }, class: 'clickable', tabindex: '0' },
          [g.gate_key, g.name || '–', label('direction', g.direction), h('span', { class: `badge ${g.online ? 'st-free' : g.online === false ? 'st-offline' : 'st-unknown'}` }, online),
            fmtTime(g.last_heartbeat_at) || '–', beat.fps === undefined ? '–' : fmtNumber(beat.fps, 1), beat.outbox_depth ?? '–',
            beat.alarms && beat.alarms.length ? beat.alarms.join(', ') : '–', g.gallery_version ?? '–'].map((x) => h('td', null, x)));
        tr.addEventListener('click', () => { window.location.hash = `#/admin/gates/${encodeURIComponent(g.gate_key)}`; });
        return tr;
      });
      fill(list, table([t('gate.key'), t('gate.name'), t('gate.direction'), t('gate.status'), t('gate.heartbeat'), t('gate.fps'), t('gate.outbox'), t('gate.alarms'), t('gate.gallery')], rows, { class: 'grid', id: 'gates-table' }));
    } catch (err) {
      showError(message, err);
    }
  }

  async function loadPanel(gateKey) {
    const note = messageLine();
    const commands = h('div', { id: 'gate-commands' });
    const showCommands = async () => {
      try {
        const recent = await api(`/api/gates/${keyPath(gateKey)}/commands`, { query: { limit: 20 } });
        fill(commands, table([t('common.time'), t('gate.command'), t('gate.by'), t('gate.result'), t('gate.reason')],
          recent.map((c) => [fmtTime(c.issued_at), label('command', c.command), c.issued_by, c.ok === null ? t('gate.pending') : c.ok ? t('gate.ok') : `${t('gate.failed')}: ${c.detail || ''}`, c.reason || '–'])));
      } catch (err) {
        showError(note, err);
      }
    };
    const parts = [h('h2', null, gateKey)];
    if (can(ctx.user, 'gates.command')) {
      const command = select({ name: 'command' }, COMMANDS.map((c) => [c, label('command', c)]), 'unlock');
      const duration = h('input', { type: 'number', name: 'duration_s', min: '1', max: '86400', step: '1', placeholder: t('gate.duration_hint') });
      const reason = h('input', { type: 'text', name: 'reason', maxlength: '200' });
      parts.push(h('form', { class: 'stack', id: 'command-form', onsubmit: async (e) => {
        e.preventDefault();
        const sent = await busy(e.submitter, () => api(`/api/gates/${keyPath(gateKey)}/command`, { method: 'POST', body: { command: command.value, duration_s: duration.value ? Number(duration.value) : null, reason: reason.value } }), note);
        if (sent) { showMessage(note, t('gate.sent', { command: label('command', sent.command) }), 'ok'); showCommands(); }
      } }, field(t('gate.command'), command), field(t('gate.duration'), duration), field(t('gate.reason'), reason), h('button', { type: 'submit', class: 'primary' }, t('gate.send'))));
    }
    parts.push(note, h('h3', null, t('gate.recent')), commands);
    fill(panel, ...parts);
    showCommands();
  }

  fill(root, message, h('div', { class: 'split' }, list, panel));
  load();
  if (args[0]) loadPanel(args.join('/'));
  const timer = setInterval(load, 10000);
  return () => { alive = false; clearInterval(timer); };
}

// --- devices ---------------------------------------------------------------------------------

function mountDevices(root) {
  const building = h('input', { type: 'text', name: 'building', maxlength: '64' });
  const message = messageLine();
  const list = h('section', { id: 'devices-list' });

  async function load(button) {
    const devices = await busy(button, () => api('/api/devices', { query: { building: building.value.trim() } }), message);
    if (!devices) return;
    fill(list, h('p', { class: 'muted' }, t('devices.count', { count: devices.length })),
      table([t('devices.key'), t('devices.kind'), t('devices.board_status'), t('device.status'), t('device.faults'), t('device.updated')],
        devices.map((d) => [h('a', { href: deviceHref(d.device_key) }, d.device_key), label('kind', d.kind), badge(`st-${d.board_status}`, statusText(d)), label('status', d.status), faultText(d.faults) || '–', fmtTime(d.updated_at)]),
        { class: 'grid', id: 'devices-table' }));
  }
  fill(root, h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(e.submitter); } },
    field(t('common.building'), building), h('button', { type: 'submit', class: 'primary' }, t('common.search'))), message, list);
  load(null);
  return () => {};
}

// --- users -----------------------------------------------------------------------------------

function mountUsers(root, ctx) {
  const message = messageLine();
  const list = h('section', { id: 'users-list' });

  async function load() {
    try {
      const users = await api('/api/users');
      const rows = users.map((u) => {
        const role = select({ name: 'role', 'aria-label': t('user.role') }, ROLES.map((r) => [r, label('role', r)]), u.role);
        role.addEventListener('change', async () => {
          const done = await busy(role, () => api(`/api/users/${u.id}`, { method: 'PATCH', body: { role: role.value } }), message);
          if (done) showMessage(message, t('user.role_changed', { user: u.username, role: label('role', done.role) }), 'ok');
          load();
        });
        const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', placeholder: t('user.new_password') });
        const actions = [
          h('form', { class: 'inline', onsubmit: async (e) => {
            e.preventDefault();
            const ok = await busy(e.submitter, () => api(`/api/users/${u.id}/password`, { method: 'POST', body: { password: password.value } }), message);
            if (ok !== undefined) { password.value = ''; showMessage(message, t('user.password_set', { user: u.username }), 'ok'); load(); }
          } }, password, h('button', { type: 'submit' }, t('user.set_password'))),
        ];
        if (u.active && u.username !== ctx.user.username) {
          actions.push(h('button', { type: 'button', class: 'danger', onclick: async (e) => {
            if (!window.confirm(t('user.deactivate_confirm', { user: u.username }))) return;
            if (await busy(e.currentTarget, () => api(`/api/users/${u.id}/deactivate`, { method: 'POST' }), message)) load();
          } }, t('user.deactivate')));
        }
        return h('tr', { dataset: { username: u.username }, class: u.active ? null : 'inactive' },
          [u.username, u.display_name || '–', role, u.active ? t('user.active') : t('user.inactive'), fmtTime(u.last_login_at) || '–', actions].map((x) => h('td', null, x)));
      });
      fill(list, table([t('user.username'), t('user.display_name'), t('user.role'), t('user.state'), t('user.last_login'), ''], rows, { class: 'grid', id: 'users-table' }));
    } catch (err) {
      showError(message, err);
    }
  }

  const inputs = {
    username: h('input', { type: 'text', name: 'username', required: true, maxlength: '64', autocomplete: 'off' }),
    display_name: h('input', { type: 'text', name: 'display_name', maxlength: '128' }),
    role: select({ name: 'role' }, ROLES.map((r) => [r, label('role', r)]), 'guard'),
    password: h('input', { type: 'password', name: 'password', required: true, autocomplete: 'new-password' }),
  };
  const create = h('form', { class: 'filters', id: 'user-create', onsubmit: async (e) => {
    e.preventDefault();
    const body = { username: inputs.username.value.trim(), display_name: inputs.display_name.value.trim(), role: inputs.role.value, password: inputs.password.value };
    const made = await busy(e.submitter, () => api('/api/users', { method: 'POST', body }), message);
    if (made) {
      showMessage(message, t('user.created', { user: made.username }), 'ok');
      inputs.username.value = '';
      inputs.password.value = '';
      inputs.display_name.value = '';
      load();
    }
  } },
  field(t('user.username'), inputs.username), field(t('user.display_name'), inputs.display_name), field(t('user.role'), inputs.role), field(t('user.password'), inputs.password),
  h('button', { type: 'submit', class: 'primary' }, t('user.create')));
  fill(root, h('h2', null, t('user.new')), create, message, list);
  load();
  return () => {};
}

// --- login throttles -------------------------------------------------------------------------

/** What a count is about: the user name tried, the source, or both. */
function throttleSubject(row) {
  return [row.username, row.address].filter(Boolean).join(' @ ');
}

/** The wait a count imposes now. Seconds left by the browser's clock, bounded by the count's delay. */
function throttleWait(row) {
  if (!row.active) return t('throttle.no_wait');
  const left = Math.ceil((Date.parse(row.until) - Date.now()) / 1000);
  const seconds = Math.max(1, Math.min(left, Math.ceil(row.delay_s)));
  return t('throttle.waiting', { seconds, until: fmtTime(row.until) });
}

function mountThrottles(root) {
  const message = messageLine();
  const list = h('section', { id: 'throttles-list' });
  const counted = h('p', { class: 'muted', id: 'throttles-count' });
  let alive = true;

  const showEmpty = () => fill(list, h('p', { class: 'empty muted', id: 'throttles-empty' }, t('throttle.none')));

  async function lift(button, row, tr) {
    const scope = label('throttle.scope', row.scope);
    if (!window.confirm(t('throttle.lift_confirm', { scope, what: throttleSubject(row) }))) return;
    button.disabled = true;
    try {
      await api(`/api/login-throttles/${row.id}`, { method: 'DELETE' });
      showMessage(message, t('throttle.lifted', { scope, what: throttleSubject(row) }), 'ok');
    } catch (err) {
      button.disabled = false;
      if (err.status !== 404) { showError(message, err); return; }
      showMessage(message, t('throttle.gone'), 'ok'); // lifted elsewhere, reset by a login, or forgotten
    }
    const body = tr.parentElement;
    tr.remove();
    if (!alive || !body) return;
    if (body.rows.length) fill(counted, t('throttle.count', { count: body.rows.length }));
    else showEmpty();
  }

  async function load(button) {
    const rows = await busy(button, () => api('/api/login-throttles'), message);
    if (!rows || !alive) return;
    if (!rows.length) { showEmpty(); return; }
    const trs = rows.map((row) => {
      const tr = h('tr', { dataset: { throttleId: row.id, scope: row.scope }, class: row.active ? null : 'inactive' });
      const button = h('button', { type: 'button', class: 'danger lift-throttle', onclick: (e) => lift(e.currentTarget, row, tr) }, t('throttle.lift'));
      tr.append(...[label('throttle.scope', row.scope), row.username || '–', row.address || '–', String(row.failures), fmtTime(row.last_failure_at), throttleWait(row)]
        .map((x) => h('td', null, x)), h('td', { class: 'row-actions' }, button));
      return tr;
    });
    fill(list, fill(counted, t('throttle.count', { count: rows.length })),
      table([t('throttle.scope'), t('throttle.username'), t('throttle.address'), t('throttle.failures'), t('throttle.last_failure'), t('throttle.wait'), ''], trs, { class: 'grid', id: 'throttles-table' }));
  }

  const refresh = h('button', { type: 'button', id: 'throttles-refresh', onclick: (e) => load(e.currentTarget) }, t('common.refresh'));
  fill(root, h('p', { class: 'muted' }, t('throttle.hint')), h('div', { class: 'toolbar' }, refresh), message, list);
  load(null);
  return () => { alive = false; };
}
