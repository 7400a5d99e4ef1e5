// The login page: username and password for a bearer token; the language can be picked here too.

import { api } from '../api.js';
import { h, fill, field, select } from '../dom.js';
import { t, lang, setLang, LANGUAGES } from '../i18n.js';
import { messageLine, showMessage } from '../ui.js';

// When the gateway lets this browser try again after too many failed logins (ms since the
// epoch); kept across re-renders of the page (a language switch) so the countdown goes on.
let throttledUntil = 0;

/** Render the login form; onLogin(loginAnswer) is called with the API's answer. */
export function mount(root, onLogin) {
  const username = h('input', { type: 'text', id: 'login-username', name: 'username', required: true, maxlength: '64', autocomplete: 'username', autofocus: true });
  const password = h('input', { type: 'password', id: 'login-password', name: 'password', required: true, maxlength: '1024', autocomplete: 'current-password' });
  const message = messageLine();
  message.id = 'login-error';
  const submit = h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('auth.login'));
  const langSelect = select({ id: 'login-lang', 'aria-label': t('common.language') }, LANGUAGES.map((code) => [code, t(`lang.${code}`)]), lang());
  langSelect.addEventListener('change', () => setLang(langSelect.value));

  // Too many failed logins: count the server's Retry-After down, the button off meanwhile.
  let countdown = null;
  const stopCountdown = () => {
    clearInterval(countdown);
    countdown = null;
  };
  const tick = () => {
    const left = Math.ceil((throttledUntil - Date.now()) / 1000);
    if (left > 0) {
      showMessage(message, t('auth.throttled', { seconds: left }), 'error');
      return;
    }
    stopCountdown();
    submit.disabled = false;
    showMessage(message, t('auth.throttle_over'), 'ok');
  };
  const startCountdown = () => {
    stopCountdown();
    submit.disabled = true;
    tick();
    if (throttledUntil > Date.now()) countdown = setInterval(tick, 1000);
  };

  const form = h('form', { class: 'login stack', id: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    if (countdown !== null) return;
    submit.disabled = true;
    showMessage(message, '');
    try {
      const answer = await api('/api/auth/login', { method: 'POST', body: { username: username.value.trim(), password: password.value } });
      password.value = '';
      onLogin(answer);
    } catch (err) {
      if (err.status === 429) {
        // No password was checked: it stays in the field for the next try.
        throttledUntil = Date.now() + Math.max(1, err.retryAfterS || 1) * 1000;
        startCountdown();
        return;
      }
      password.value = '';
      let text;
      if (err.status === 401) text = t('auth.wrong');
      else if (err.status === 0) text = t('auth.unreachable');
      else text = `${t('common.error')} (${err.status}): ${err.detail}`;
      showMessage(message, text, 'error');
      password.focus();
    } finally {
      if (countdown === null) submit.disabled = false;
    }
  } },
  h('h1', null, t('app.title')),
  h('p', { class: 'muted' }, t('auth.subtitle')),
  field(t('auth.username'), username),
  field(t('auth.password'), password),
  submit,
  message,
  field(t('common.language'), langSelect));

  fill(root, h('div', { class: 'login-wrap' }, form));
  username.focus();
  if (throttledUntil > Date.now()) startCountdown();
  return stopCountdown;
}
