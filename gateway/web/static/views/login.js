// The login page: username and password for a bearer token; the language can be picked here too.

import { api } from '../api.js';
import { h, fill, field, select } from '../dom.js';
import { t, lang, setLang, LANGUAGES } from '../i18n.js';
import { messageLine, showMessage } from '../ui.js';

/** Render the login form; onLogin(loginAnswer) is called with the API's answer. */
export function mount(root, onLogin) {
  const username = h('input', { type: 'text', id: 'login-username', name: 'username', required: true, maxlength: '64', autocomplete: 'username', autofocus: true });
  const password = h('input', { type: 'password', id: 'login-password', name: 'password', required: true, maxlength: '1024', autocomplete: 'current-password' });
  const message = messageLine();
  message.id = 'login-error';
  const submit = h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('auth.login'));
  const langSelect = select({ id: 'login-lang', 'aria-label': t('common.language') }, LANGUAGES.map((code) => [code, t(`lang.${code}`)]), lang());
  langSelect.addEventListener('change', () => setLang(langSelect.value));

  const form = h('form', { class: 'login stack', id: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    showMessage(message, '');
    try {
      const answer = await api('/api/auth/login', { method: 'POST', body: { username: username.value.trim(), password: password.value } });
      password.value = '';
      onLogin(answer);
    } catch (err) {
      password.value = '';
      let text;
      if (err.status === 401) text = t('auth.wrong');
      else if (err.status === 429) text = t('auth.locked');
      else if (err.status === 0) text = t('auth.unreachable');
      else text = `${t('common.error')} (${err.status}): ${err.detail}`;
      showMessage(message, text, 'error');
      password.focus();
    } finally {
      submit.disabled = false;
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
  return () => {};
}
