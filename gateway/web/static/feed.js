// The live alert feed: one WebSocket to /api/ws/alerts, a snapshot of the open alerts and then
// every change, upserted by id. When the socket drops (gateway restart, network) it reconnects
// with exponential backoff and the next snapshot replaces what was known. The login token never
// goes in the URL (proxies and access logs keep URLs): it is the socket's first message.

import { token } from './api.js';

export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
const MAX_BACKOFF_MS = 8000;
const SILENCE_LIMIT_MS = 65000; // the server pings every 20 s: three missed pings = dead link

export function isOpen(alert) {
  return alert.state === 'active' || alert.state === 'acknowledged';
}

function group(alert) {
  if (alert.state === 'active') return alert.silenced ? 1 : 0;
  if (alert.needs_review) return 2;
  if (alert.state === 'acknowledged') return 3;
  return 4;
}

/** Console order, as the API's list: unacknowledged first, then most severe, then most recent. */
export function consoleOrder(a, b) {
  return (
    group(a) - group(b) ||
    b.severity - a.severity ||
    Date.parse(b.last_at) - Date.parse(a.last_at) ||
    b.id - a.id
  );
}

/**
 * Events: 'status' (detail: {status, retryInMs}), 'snapshot', 'alert' (detail: {alert, previous}),
 * 'unauthorized'. Statuses: connecting, live, reconnecting, forbidden, stopped.
 */
export class AlertFeed extends EventTarget {
  constructor() {
    super();
    this.alerts = new Map();
    this.status = 'stopped';
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.watchdog = null;
    this.stopped = true;
    this.connectedOnce = false;
    this.onOnline = () => this.reconnectNow();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000);
      this.socket = null;
    }
    this.alerts = new Map();
    this.attempt = 0;
    this.connectedOnce = false;
    this.setStatus('stopped');
  }

  /** Open alerts in console order. */
  sorted() {
    return [...this.alerts.values()].sort(consoleOrder);
  }

  reconnectNow() {
    if (this.stopped || this.status === 'live' || this.status === 'connecting') return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${window.location.host}/api/ws/alerts`;
    this.setStatus(this.connectedOnce ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    // Read the token when the socket opens: a reconnect carries the current login.
    socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token: token() || '' }));
    socket.onmessage = (event) => this.onMessage(event.data);
    socket.onclose = (event) => this.onClose(event);
    socket.onerror = () => {}; // a close event always follows
    this.armWatchdog();
  }

  armWatchdog() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.socket) this.socket.close(); // no ping for too long: treat the link as dead
    }, SILENCE_LIMIT_MS);
  }

  onMessage(raw) {
    this.armWatchdog();
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message.type === 'snapshot') {
      this.attempt = 0;
      this.connectedOnce = true;
      const before = new Set(this.alerts.keys());
      this.alerts = new Map(message.alerts.map((a) => [a.id, a]));
      this.setStatus('live');
      const added = message.alerts.filter((a) => !before.has(a.id));
      this.dispatchEvent(new CustomEvent('snapshot', { detail: { added } }));
    } else if (message.type === 'alert' && message.alert) {
      this.applyLocal(message.alert);
    }
  }

  /** Upsert one alert (from the socket, or the answer of an action taken here). */
  applyLocal(alert) {
    const previous = this.alerts.get(alert.id) || null;
    // A change read while the snapshot was taken may come twice: keep the newest.
    if (previous && Date.parse(previous.updated_at) > Date.parse(alert.updated_at)) return;
    if (isOpen(alert)) this.alerts.set(alert.id, alert);
    else this.alerts.delete(alert.id);
    this.dispatchEvent(new CustomEvent('alert', { detail: { alert, previous } }));
  }

  onClose(event) {
    clearTimeout(this.watchdog);
    this.socket = null;
    if (this.stopped) return;
    if (event.code === CLOSE_UNAUTHORIZED) {
      this.stopped = true;
      this.dispatchEvent(new CustomEvent('unauthorized'));
      return;
    }
    if (event.code === CLOSE_FORBIDDEN) {
      this.stopped = true;
      this.setStatus('forbidden');
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.setStatus('reconnecting', delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setStatus(status, retryInMs = null) {
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', { detail: { status, retryInMs } }));
  }
}
