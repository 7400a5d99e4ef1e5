// "My record": what the gateway holds about the signed-in student (PIPL's right to see it):
// their enrolment, face consent and its history, which templates exist (ids and dates only),
// erasures and which gates have yet to confirm them, the last 30 days at the gates. And what
// they may change themselves: withdraw face consent (card/PIN from then on), PIN, password.

import { api } from '../api.js';
import { h, fill, field } from '../dom.js';
import { t, label, fmtTime } from '../i18n.js';
import { messageLine, showMessage, busy, badge } from '../ui.js';

const ERASURE_POLL_MS = 2000;

function facts(rows) {
  return h('dl', { class: 'facts' }, rows.flatMap(([name, value]) => [h('dt', null, name), h('dd', null, value)]));
}

function yesNo(value) {
  return value ? t('common.yes') : t('common.no');
}

function dateOnly(iso) {
  if (!iso) return t('common.none');
  return fmtTime(iso);
}

export function mount(root, args, ctx) {
  const message = messageLine();
  message.id = 'record-message';
  const body = h('div', { class: 'record', id: 'record', 'aria-busy': 'true' }, h('p', { class: 'muted' }, t('common.loading')));
  fill(root, h('h1', null, t('record.title')), message, body);

  let pollTimer = null;
  let stopped = false;
  let confirming = false;

  function schedulePoll(record) {
    clearTimeout(pollTimer);
    if (stopped || !record.erasures.some((e) => !e.completed_at)) return;
    pollTimer = setTimeout(() => load(false), ERASURE_POLL_MS);
  }

  async function load(showErrors = true) {
    try {
      const record = await api('/api/student/record');
      if (stopped) return;
      render(record);
      schedulePoll(record);
    } catch (err) {
      if (stopped) return;
      if (showErrors) showMessage(message, `${t('common.error')}${err.status ? ` (${err.status})` : ''}: ${err.detail}`);
      else pollTimer = setTimeout(() => load(false), ERASURE_POLL_MS * 2); // keep polling
    }
  }

  function personSection(p) {
    return h(
      'section',
      { class: 'panel', id: 'record-person' },
      h('h2', null, t('record.person')),
      facts([
        [t('person.name'), p.name],
        [t('record.student_id'), p.person_id],
        [t('person.status'), label('person.status', p.status)],
        [t('person.buildings'), p.buildings.join(', ') || t('common.none')],
        [t('person.valid_from'), dateOnly(p.valid_from)],
        [t('person.valid_until'), dateOnly(p.valid_until)],
        [t('record.cards'), t('record.cards_count', { count: p.cards })],
        [t('person.pin'), p.has_pin ? t('record.pin_set') : t('record.pin_unset')],
      ]),
    );
  }

  function faceSection(record) {
    const p = record.person;
    const state = p.face_opt_out
      ? badge('st-offline', t('record.face.opted_out'))
      : record.face_consent
        ? badge('st-free', t('record.face.consented'))
        : badge('st-unknown', t('record.face.no_consent'));
    const templates = record.templates.length
      ? h('ul', { class: 'plain', id: 'record-templates' }, record.templates.map((tpl) => h('li', null, t('record.template', { id: tpl.id, at: fmtTime(tpl.created_at) }))))
      : h('p', { class: 'muted', id: 'record-templates' }, t('record.no_templates'));
    const section = h(
      'section',
      { class: 'panel', id: 'record-face' },
      h('h2', null, t('record.face.title')),
      h('p', { id: 'record-face-state', dataset: { optOut: String(p.face_opt_out), consent: String(record.face_consent) } }, state),
      h('h3', null, t('record.templates')),
      templates,
    );
    if (!p.face_opt_out) section.append(withdrawBlock());
    return section;
  }

  function withdrawBlock() {
    const wrap = h('div', { class: 'withdraw', id: 'withdraw' });
    const start = h('button', { type: 'button', class: 'danger', id: 'withdraw-start' }, t('record.withdraw'));
    const renderAsk = () => {
      confirming = false;
      fill(wrap, h('p', { class: 'muted small' }, t('record.withdraw_hint')), start);
    };
    const renderConfirm = () => {
      confirming = true;
      const yes = h('button', { type: 'button', class: 'danger primary-danger', id: 'withdraw-confirm' }, t('record.withdraw_confirm'));
      const no = h('button', { type: 'button', id: 'withdraw-cancel' }, t('record.withdraw_keep'));
      yes.addEventListener('click', async () => {
        const answer = await busy(yes, () => api('/api/student/face/withdraw', { method: 'POST' }), message);
        if (answer) {
          confirming = false;
          showMessage(message, t('record.withdrawn'), 'ok');
          load();
        }
      });
      no.addEventListener('click', renderAsk);
      fill(wrap, h('p', { class: 'confirm-text', role: 'alert' }, t('record.withdraw_question')), h('div', { class: 'buttons' }, yes, no));
    };
    start.addEventListener('click', renderConfirm);
    if (confirming) renderConfirm();
    else renderAsk();
    return wrap;
  }

  function erasureSection(erasures) {
    if (!erasures.length) return null;
    return h(
      'section',
      { class: 'panel', id: 'record-erasures' },
      h('h2', null, t('record.erasures')),
      h(
        'ul',
        { class: 'plain' },
        erasures.map((e) => {
          const done = Boolean(e.completed_at);
          return h(
            'li',
            { class: 'erasure', dataset: { id: String(e.id), state: done ? 'complete' : 'pending' } },
            h('div', null, t('record.erasure_requested', { at: fmtTime(e.requested_at) })),
            done
              ? badge('st-free', t('record.erasure_done', { at: fmtTime(e.completed_at) }))
              : h('div', null, badge('st-running', t('record.erasure_pending')), h('ul', { class: 'gates' }, e.unconfirmed_gates.map((g) => h('li', { class: 'gate-pending' }, g)))),
          );
        }),
      ),
    );
  }

  function consentSection(consents) {
    const items = consents.map((c) =>
      h(
        'li',
        { class: 'consent', dataset: { granted: String(c.granted) } },
        h('div', null, badge(c.granted ? 'st-free' : 'st-offline', c.granted ? t('record.consent_granted') : t('record.consent_withdrawn')), ' ', label('purpose', c.purpose)),
        h('div', { class: 'small muted' }, t('record.consent_by', { at: fmtTime(c.recorded_at), by: c.recorded_by })),
        c.evidence ? h('div', { class: 'small' }, c.evidence) : null,
        c.withdrawn_at ? h('div', { class: 'small muted' }, t('record.consent_ended', { at: fmtTime(c.withdrawn_at) })) : null,
      ),
    );
    return h(
      'section',
      { class: 'panel', id: 'record-consents' },
      h('h2', null, t('record.consents')),
      items.length ? h('ul', { class: 'plain' }, items) : h('p', { class: 'muted' }, t('record.no_consents')),
    );
  }

  function accessSection(rows) {
    // Three columns that fit a phone: when, where, what happened.
    const table = h(
      'table',
      { class: 'grid compact', id: 'record-access' },
      h('thead', null, h('tr', null, h('th', null, t('common.time')), h('th', null, t('record.where')), h('th', null, t('access.decision')))),
      h(
        'tbody',
        null,
        rows.map((r) =>
          h(
            'tr',
            { class: r.decision === 'denied' ? 'denied' : null, dataset: { decision: r.decision } },
            h('td', null, fmtTime(r.ts)),
            h('td', null, `${r.building} · ${r.gate_id}`, h('div', { class: 'small muted' }, label('direction', r.direction))),
            h('td', null, label('decision', r.decision), h('div', { class: 'small muted' }, [label('method', r.method), r.reason !== 'granted' ? label('reason', r.reason) : null].filter(Boolean).join(' · '))),
          ),
        ),
      ),
    );
    return h(
      'section',
      { class: 'panel', id: 'record-access-section' },
      h('h2', null, t('record.access', { count: rows.length })),
      rows.length ? h('div', { class: 'table-wrap' }, table) : h('p', { class: 'muted', id: 'record-access-none' }, t('record.no_access')),
    );
  }

  function pinSection() {
    const pin = h('input', { type: 'password', name: 'pin', id: 'pin-input', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,8}', minlength: '4', maxlength: '8', required: true });
    const again = h('input', { type: 'password', name: 'pin_again', id: 'pin-again', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,8}', minlength: '4', maxlength: '8', required: true });
    const note = messageLine();
    note.id = 'pin-message';
    const submit = h('button', { type: 'submit', class: 'primary' }, t('record.pin_save'));
    const form = h('form', { class: 'stack', id: 'pin-form' }, field(t('record.pin_new'), pin), field(t('record.pin_again'), again), submit, note);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (pin.value !== again.value) {
        showMessage(note, t('record.pin_mismatch'));
        return;
      }
      const done = await busy(submit, async () => {
        await api('/api/student/pin', { method: 'POST', body: { pin: pin.value } });
        return true;
      }, note);
      if (done) {
        pin.value = '';
        again.value = '';
        showMessage(note, t('record.pin_saved'), 'ok');
        load();
      }
    });
    return h('section', { class: 'panel', id: 'record-pin' }, h('h2', null, t('record.pin_title')), h('p', { class: 'muted small' }, t('record.pin_hint')), form);
  }

  function passwordSection() {
    const current = h('input', { type: 'password', name: 'current_password', id: 'password-current', autocomplete: 'current-password', required: true, maxlength: '1024' });
    const next = h('input', { type: 'password', name: 'new_password', id: 'password-new', autocomplete: 'new-password', required: true, maxlength: '1024' });
    const again = h('input', { type: 'password', name: 'new_password_again', id: 'password-again', autocomplete: 'new-password', required: true, maxlength: '1024' });
    const note = messageLine();
    note.id = 'password-message';
    const submit = h('button', { type: 'submit', class: 'primary' }, t('record.password_save'));
    const form = h('form', { class: 'stack', id: 'password-form' }, field(t('record.password_current'), current), field(t('record.password_new'), next), field(t('record.password_again'), again), submit, note);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (next.value !== again.value) {
        showMessage(note, t('record.password_mismatch'));
        return;
      }
      const newPassword = next.value;
      const done = await busy(submit, async () => {
        try {
          await ctx.relogin(() => api('/api/me/password', { method: 'POST', body: { current_password: current.value, new_password: newPassword } }), newPassword);
        } catch (err) {
          // 403: the current password is wrong (the server's detail is in English)
          throw err.status === 403 ? { detail: t('record.password_wrong') } : err;
        }
        return true;
      }, note);
      if (done) {
        for (const input of [current, next, again]) input.value = '';
        showMessage(note, t('record.password_saved'), 'ok');
      }
    });
    return h('section', { class: 'panel', id: 'record-password' }, h('h2', null, t('record.password_title')), form);
  }

  // The PIN and password forms stay put: a poll re-rendering the record keeps what is typed
  // (and the focus).
  const factsEl = h('div', { class: 'record-facts' });
  const forms = h('div', { class: 'record-forms' }, pinSection(), passwordSection());

  function render(record) {
    if (body.getAttribute('aria-busy') === 'true') {
      fill(body, factsEl, forms);
      body.setAttribute('aria-busy', 'false');
    }
    fill(
      factsEl,
      personSection(record.person),
      faceSection(record),
      erasureSection(record.erasures),
      accessSection(record.access),
      consentSection(record.consents),
    );
    body.dataset.loaded = '1';
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(pollTimer);
  };
}
