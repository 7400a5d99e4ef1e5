// A student's watch fired: a toast on the page, the tone (sound.js: muted stays muted, and it
// plays only once a gesture unlocked audio) and a browser notification when they allowed them.
// Permission is asked on their first "notify me" press, never when the page loads.

import { h, fill } from './dom.js';
import { t, label, fmtClock } from './i18n.js';
import { beep } from './sound.js';

const TOAST_MS = 20000;
let shown = 0;

function region() {
  let el = document.getElementById('toasts');
  if (!el) {
    el = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(el);
  }
  return el;
}

/** The notice as a line in the page's language (the server's title is bilingual). */
export function noticeText(notice) {
  const device = notice.device || {};
  const kind = label('kind', device.kind) || t('student.machine');
  const place = [device.room, device.device_id].filter(Boolean).join(' · ');
  const key = notice.watch_kind === 'free' ? 'student.notice.free' : 'student.notice.finished';
  return t(key, { kind, place });
}

/** Ask for notification permission (once, from a user's press). */
export function askNotificationPermission() {
  if (!('Notification' in window) || Notification.permission !== 'default') return;
  try {
    Notification.requestPermission().catch(() => {});
  } catch {
    // older browsers: the callback form; the toast and tone still work
  }
}

function browserNotification(text, notice) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return false;
  try {
    const note = new Notification(t('app.title'), { body: text, tag: `watch-${notice.watch_id}` });
    note.onclick = () => window.focus();
    return true;
  } catch {
    return false; // Android Chrome allows them from a service worker only: the toast remains
  }
}

/** Show one notice: toast, tone, browser notification. */
export function showNotice(notice) {
  const text = noticeText(notice);
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': t('student.dismiss') }, '×');
  const toast = h(
    'div',
    { class: `toast notice-${notice.watch_kind === 'free' ? 'free' : 'finished'}`, dataset: { watchId: String(notice.watch_id) } },
    h('div', { class: 'toast-text' }, h('strong', null, text), h('div', { class: 'small' }, fmtClock(notice.at ? new Date(notice.at) : new Date()))),
    close,
  );
  const remove = () => toast.remove();
  close.addEventListener('click', remove);
  setTimeout(remove, TOAST_MS);
  region().prepend(toast);
  beep(3);
  if (browserNotification(text, notice)) {
    shown += 1;
    document.body.dataset.notifications = String(shown);
  }
}

/** Remove every toast (logging out). */
export function clearNotices() {
  const el = document.getElementById('toasts');
  if (el) fill(el);
}
