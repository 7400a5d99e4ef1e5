// Pieces every view uses: who may do what, sub-tabs, messages, buttons that wait for the API.

import { h, fill } from './dom.js';
import { t } from './i18n.js';

const A = 'admin';
const G = 'guard';
const F = 'facilities';
const C = 'counsellor';
const AU = 'auditor';
const S = 'student';

// Mirrors the API's role matrix (docs/api.md); the API still checks every call.
const PERMISSIONS = {
  'alerts.read': [A, G, F, C, AU],
  'alerts.act': [A, G, F, C],
  'silences.read': [A, G, F, AU],
  'silences.write': [A, G, F],
  'access.read': [A, G, C, AU],
  'access.report': [A, G], // "not this person" on a face-decided row (wrong-match feedback)
  'rollcall.read': [A, G, AU],
  firealarm: [A, G],
  'devices.read': [A, F, G, AU],
  'people.read': [A, G, C, AU],
  'people.write': [A],
  'enrolment.write': [A],
  'enrolment.read': [A, AU],
  'gates.read': [A, G, AU],
  'gates.command': [A, G],
  'users.admin': [A],
  // a student's own page (their rooms, watches and record); no staff role has it
  'student.self': [S],
};

export function can(user, permission) {
  return Boolean(user) && (PERMISSIONS[permission] || []).includes(user.role);
}

/** Sub-tabs as links; the active one is marked. tabs: [{id, label, href}]. */
export function tabBar(tabs, activeId) {
  return h(
    'nav',
    { class: 'tabs', role: 'tablist' },
    tabs.map((tab) =>
      h('a', { href: tab.href, role: 'tab', class: tab.id === activeId ? 'active' : null, 'aria-selected': String(tab.id === activeId), dataset: { tab: tab.id } }, tab.label),
    ),
  );
}

/**
 * A page of sub-tabs, each shown only to the roles its permission allows: fills `root` with the
 * title, the tab bar and an empty body. The active tab is `requested` if allowed, else the first.
 * tabs: [{id, permission, label}]; href(id) links a tab. Returns {active, body}.
 */
export function tabbedPage(root, { title, tabs, user, requested, href }) {
  const allowed = tabs.filter((tab) => can(user, tab.permission));
  const active = allowed.find((tab) => tab.id === requested) || allowed[0];
  const body = h('div', { class: 'tab-body' });
  fill(
    root,
    h('h1', null, title),
    tabBar(allowed.map((tab) => ({ id: tab.id, label: t(tab.label), href: href(tab.id) })), active.id),
    body,
  );
  return { active: active.id, body };
}

/** A message line for errors and confirmations. */
export function messageLine() {
  return h('p', { class: 'message', role: 'status', hidden: true });
}

export function showMessage(el, text, kind = 'error') {
  el.hidden = !text;
  el.className = `message ${kind}`;
  fill(el, text || '');
}

export function showError(el, err) {
  const detail = err && err.detail !== undefined ? err.detail : String(err);
  const status = err && err.status ? ` (${err.status})` : '';
  showMessage(el, `${t('common.error')}${status}: ${detail}`, 'error');
}

/** Disable a button while `work()` runs; errors go to `messageEl`. Resolves to work's result. */
export async function busy(button, work, messageEl) {
  if (button) button.disabled = true;
  try {
    const result = await work();
    if (messageEl) showMessage(messageEl, '');
    return result;
  } catch (err) {
    if (messageEl) showError(messageEl, err);
    else console.error(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function badge(cls, text) {
  return h('span', { class: `badge ${cls}` }, text);
}

/** A datetime-local value (local time) as an ISO UTC string; '' stays ''. */
export function localToIso(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

/** An ISO time as a datetime-local value (local time). */
export function isoToLocal(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** Repeat `fn` every `ms` while the page is visible; returns a stop function. */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (err) {
        console.error(err);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  const onVisible = () => {
    if (!document.hidden && !stopped) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}
