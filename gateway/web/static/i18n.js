// Tiny i18n: one JSON dictionary per language (static/i18n/<lang>.json), the same keys in each.
// Chinese is the default; the choice is kept in localStorage.

export const LANGUAGES = ['zh-CN', 'en'];
export const DEFAULT_LANG = 'zh-CN';
const STORAGE_KEY = 'dormguard.lang';

const dictionaries = {};
let current = DEFAULT_LANG;
const missing = new Set();

/** Load every dictionary and pick the saved language (or the default). */
export async function initI18n() {
  await Promise.all(
    LANGUAGES.map(async (lang) => {
      const response = await fetch(`/static/i18n/${lang}.json`, { cache: 'no-cache' });
      if (!response.ok) throw new Error(`dictionary ${lang}: HTTP ${response.status}`);
      dictionaries[lang] = await response.json();
    }),
  );
  const saved = localStorage.getItem(STORAGE_KEY);
  current = LANGUAGES.includes(saved) ? saved : DEFAULT_LANG;
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

/** Switch language, translate the static shell and tell the views (event 'langchange'). */
export function setLang(next) {
  if (!LANGUAGES.includes(next) || next === current) return;
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
  translateShell();
  window.dispatchEvent(new Event('langchange'));
}

export function has(key) {
  return Object.hasOwn(dictionaries[current] || {}, key);
}

/** The text of a key in the current language, with {name} placeholders filled from vars. */
export function t(key, vars) {
  let text = (dictionaries[current] || {})[key];
  if (text === undefined) {
    if (!missing.has(key)) {
      missing.add(key);
      console.warn(`i18n: missing key ${key} (${current})`);
    }
    text = key;
  }
  if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  return text;
}

/** The label of a value of some vocabulary (alert type, status, ...); the raw value when unknown. */
export function label(group, value) {
  if (value === null || value === undefined || value === '') return '';
  const key = `${group}.${value}`;
  return has(key) ? t(key) : String(value);
}

/** Fill every [data-i18n] element of the page shell with its text. */
export function translateShell(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.title = t('app.title');
}

export function fmtTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(current, { dateStyle: 'short', timeStyle: 'medium' }).format(date);
}

export function fmtClock(date) {
  return new Intl.DateTimeFormat(current, { timeStyle: 'medium' }).format(date);
}

/** 125 -> "2:05", 3900 -> "1:05:00". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const total = Math.max(0, Math.round(seconds));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  return hh > 0 ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return new Intl.NumberFormat(current, { maximumFractionDigits: digits }).format(value);
}
