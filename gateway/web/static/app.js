// The console's entry point: log-in state, the hash router, the navigation for the caller's role,
// the live feed (alerts for staff, rooms and notices for students) with its sound and banner.

import { api, setToken, token, onUnauthorized } from './api.js';
import { h, fill } from './dom.js';
import { AlertFeed } from './feed.js';
import { StudentFeed } from './student_feed.js';
import { showNotice, clearNotices } from './notices.js';
import { initI18n, t, label, lang, setLang, translateShell } from './i18n.js';
import { beep, installSoundUnlock, isMuted, setMuted, soundReady, onSoundChange } from './sound.js';
import { can } from './ui.js';
import * as loginView from './views/login.js';
import * as guardView from './views/guard.js';
import * as boardView from './views/board.js';
import * as deviceView from './views/device.js';
import * as adminView from './views/admin.js';
import * as roomsView from './views/rooms.js';
import * as recordView from './views/record.js';

// Sections of the console; a section shows when the role holds any of its permissions.
const SECTIONS = [
  { id: 'alerts', label: 'nav.alerts', permissions: ['alerts.read'], view: guardView },
  { id: 'board', label: 'nav.board', permissions: ['devices.read'], view: boardView },
  { id: 'admin', label: 'nav.admin', permissions: adminView.ADMIN_PERMISSIONS, view: adminView },
  { id: 'device', label: null, permissions: ['devices.read'], view: deviceView },
  { id: 'rooms', label: 'nav.rooms', permissions: ['student.self'], view: roomsView },
  { id: 'record', label: 'nav.record', permissions: ['student.self'], view: recordView },
];

const els = {
  topbar: document.getElementById('topbar'),
  nav: document.getElementById('nav'),
  view: document.getElementById('view'),
  banner: document.getElementById('banner'),
  whoami: document.getElementById('whoami'),
  logout: document.getElementById('logout'),
  lang: document.getElementById('lang-select'),
  sound: document.getElementById('sound-toggle'),
};

const state = { user: null, feed: new AlertFeed(), studentFeed: new StudentFeed(), unmount: null };

function allowed(section) {
  return section.permissions.some((p) => can(state.user, p));
}

// Where each role lands after logging in (else the first section it may use).
const HOME = { facilities: 'board', student: 'rooms' };

function defaultHash() {
  const home = SECTIONS.find((s) => s.id === HOME[state.user.role]);
  if (home && allowed(home)) return `#/${home.id}`;
  const first = SECTIONS.find((s) => s.label && allowed(s));
  return first ? `#/${first.id}` : '#/';
}

function parseHash() {
  return window.location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
}

function renderNav(activeId) {
  fill(
    els.nav,
    ...SECTIONS.filter((s) => s.label && allowed(s)).map((s) =>
      h('a', { href: `#/${s.id}`, class: s.id === activeId || (activeId === 'device' && s.id === 'board') ? 'active' : null, dataset: { section: s.id } }, t(s.label)),
    ),
  );
}

function route() {
  if (state.unmount) {
    state.unmount();
    state.unmount = null;
  }
  if (!state.user) {
    showLogin();
    return;
  }
  const [sectionId, ...args] = parseHash();
  const section = SECTIONS.find((s) => s.id === sectionId);
  if (!section || !allowed(section)) {
    const next = defaultHash();
    if (window.location.hash !== next && next !== '#/') {
      window.location.replace(next);
      return;
    }
    fill(els.view, h('p', { class: 'empty' }, t('nav.nothing')));
    renderNav(null);
    return;
  }
  renderNav(section.id);
  els.view.dataset.section = section.id;
  const ctx = {
    user: state.user,
    feed: can(state.user, 'alerts.read') ? state.feed : null,
    studentFeed: can(state.user, 'student.self') ? state.studentFeed : null,
    relogin,
  };
  state.unmount = section.view.mount(els.view, args, ctx) || null;
}

function showLogin() {
  els.topbar.hidden = true;
  els.banner.hidden = true;
  els.view.dataset.section = 'login';
  state.unmount = loginView.mount(els.view, async (answer) => {
    setToken(answer.token);
    await startSession({ username: answer.username, role: answer.role, display_name: '' });
  });
}

async function startSession(user) {
  state.user = user;
  try {
    state.user = await api('/api/me');
  } catch {
    // the login answer is enough to go on; /api/me only adds the display name
  }
  els.topbar.hidden = false;
  fill(els.whoami, `${state.user.display_name || state.user.username} · ${label('role', state.user.role)}`);
  if (can(state.user, 'alerts.read')) state.feed.start();
  if (can(state.user, 'student.self')) state.studentFeed.start();
  document.body.dataset.role = state.user.role;
  if (!window.location.hash || window.location.hash === '#/' || parseHash()[0] === 'login') {
    window.history.replaceState(null, '', defaultHash());
  }
  renderSound();
  route();
}

async function logout(callApi) {
  if (callApi && token()) {
    try {
      await api('/api/auth/logout', { method: 'POST' });
    } catch {
      // the token is dropped here whatever the server says
    }
  }
  setToken(null);
  state.feed.stop();
  state.studentFeed.stop();
  clearNotices();
  state.user = null;
  delete document.body.dataset.role;
  updateTitle();
  renderSound();
  window.history.replaceState(null, '', window.location.pathname);
  route();
}

/**
 * After the caller's own password change every token is revoked: log in again with the new
 * password and reopen the live feed with the new token (it is stopped meanwhile, so the
 * revocation does not read as a logout).
 */
async function relogin(work, newPassword) {
  state.studentFeed.stop();
  state.feed.stop();
  try {
    await work();
    const answer = await api('/api/auth/login', { method: 'POST', body: { username: state.user.username, password: newPassword } });
    setToken(answer.token);
  } finally {
    if (token() && can(state.user, 'alerts.read')) state.feed.start();
    if (token() && can(state.user, 'student.self')) state.studentFeed.start();
  }
}

function liveFeed() {
  return state.user && can(state.user, 'student.self') ? state.studentFeed : state.feed;
}

function updateTitle() {
  const unacked = [...state.feed.alerts.values()].filter((a) => a.state === 'active' && !a.silenced).length;
  document.title = unacked && state.user ? `(${unacked}) ${t('app.title')}` : t('app.title');
}

function renderSound() {
  let key = 'sound.on';
  if (isMuted()) key = 'sound.off';
  else if (!soundReady()) key = 'sound.locked';
  els.sound.textContent = t(key);
  els.sound.dataset.sound = key.split('.')[1];
  els.sound.hidden = !state.user || !(can(state.user, 'alerts.read') || can(state.user, 'student.self'));
}

function renderBanner(detail) {
  const { status, retryInMs } = detail || { status: liveFeed().status };
  if (status === 'reconnecting') {
    els.banner.hidden = false;
    els.banner.className = 'banner warn';
    els.banner.dataset.status = 'reconnecting';
    els.banner.textContent = retryInMs ? t('feed.reconnecting_in', { seconds: Math.ceil(retryInMs / 1000) }) : t('feed.reconnecting');
  } else if (status === 'forbidden') {
    els.banner.hidden = false;
    els.banner.className = 'banner';
    els.banner.dataset.status = 'forbidden';
    els.banner.textContent = t('feed.forbidden');
  } else {
    els.banner.hidden = true;
    els.banner.dataset.status = status;
  }
}

function wireFeed() {
  const feed = state.feed;
  feed.addEventListener('status', (e) => renderBanner(e.detail));
  feed.addEventListener('snapshot', (e) => {
    updateTitle();
    const fresh = e.detail.added.filter((a) => a.state === 'active' && !a.silenced);
    if (fresh.length) beep(Math.max(...fresh.map((a) => a.severity)));
  });
  feed.addEventListener('alert', (e) => {
    updateTitle();
    const { alert, previous } = e.detail;
    const raised = !previous || alert.count > previous.count || previous.state !== 'active';
    if (alert.state === 'active' && !alert.silenced && raised) beep(alert.severity);
  });
  feed.addEventListener('unauthorized', () => logout(false));
  const students = state.studentFeed;
  students.addEventListener('status', (e) => renderBanner(e.detail));
  students.addEventListener('notice', (e) => showNotice(e.detail));
  students.addEventListener('unauthorized', () => logout(false));
}

async function boot() {
  await initI18n();
  translateShell();
  els.lang.value = lang();
  els.lang.addEventListener('change', () => setLang(els.lang.value));
  els.logout.addEventListener('click', () => logout(true));
  // The press that unlocks audio must not also mute it: remember whether audio was locked.
  let lockedAtPress = false;
  for (const type of ['pointerdown', 'keydown']) {
    // registered before the unlock listener, so it sees the state before this press
    document.addEventListener(type, (e) => { lockedAtPress = els.sound.contains(e.target) && !soundReady(); }, { capture: true });
  }
  els.sound.addEventListener('click', () => {
    if (!lockedAtPress) setMuted(!isMuted());
    lockedAtPress = false;
  });
  installSoundUnlock();
  onSoundChange(renderSound);
  onUnauthorized(() => logout(false));
  wireFeed();
  window.addEventListener('hashchange', route);
  window.addEventListener('langchange', () => {
    els.lang.value = lang();
    if (state.user) fill(els.whoami, `${state.user.display_name || state.user.username} · ${label('role', state.user.role)}`);
    renderSound();
    renderBanner();
    updateTitle();
    route();
  });
  if (token()) {
    try {
      const me = await api('/api/me');
      await startSession(me);
    } catch {
      setToken(null);
      route();
    }
  } else {
    route();
  }
  renderSound();
  document.body.dataset.ready = '1';
}

boot().catch((err) => {
  console.error(err);
  fill(els.view, h('p', { class: 'message error' }, `dormguard: ${String(err && err.message ? err.message : err)}`));
});
