// The gateway's REST API with the bearer token kept in sessionStorage (gone with the tab).

const TOKEN_KEY = 'dormguard.token';

export class ApiError extends Error {
  /** `retryAfterS`: the seconds of a Retry-After header (429 answers), else null. */
  constructor(status, detail, retryAfterS = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfterS = retryAfterS;
  }
}

function retryAfterSeconds(response) {
  const value = Number.parseInt(response.headers.get('Retry-After') || '', 10);
  return Number.isFinite(value) && value >= 0 ? value : null;
}

let unauthorizedHandler = () => {};

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when an authenticated call answers 401 (token expired or revoked). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** The API's error detail (a string, a validation error list or an object) as one line. */
export function detailText(data, fallback) {
  const detail = data && typeof data === 'object' ? data.detail : null;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => `${(e.loc || []).filter((x) => x !== 'body').join('.')}: ${e.msg}`)
      .join('; ');
  }
  if (detail && typeof detail === 'object' && typeof detail.message === 'string') return detail.message;
  return fallback;
}

/** Encode a path whose segments may contain anything but keep its slashes (device/gate keys). */
export function keyPath(key) {
  return String(key).split('/').map(encodeURIComponent).join('/');
}

/**
 * Call the API. `query` values that are null, undefined or '' are left out; `body` is sent as
 * JSON, `form` (a FormData) as multipart. Resolves to the JSON answer (null for 204).
 */
export async function api(path, { method = 'GET', query, body, form } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== '') url.searchParams.set(name, value);
  }
  const headers = { Accept: 'application/json' };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, String(err && err.message ? err.message : err));
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && bearer && path !== '/api/auth/login') unauthorizedHandler();
    throw new ApiError(response.status, detailText(data, `HTTP ${response.status}`), retryAfterSeconds(response));
  }
  return data;
}
