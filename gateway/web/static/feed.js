// The console's live feeds. LiveFeed is one WebSocket to the gateway: the login token goes as the
// socket's first message (never in the URL: proxies and access logs keep URLs), a snapshot comes
// back and then every change. When the socket drops (gateway restart, network, too slow a reader)
// it reconnects with exponential backoff and the next snapshot replaces what was known.
// AlertFeed (/api/ws/alerts) keeps the open alerts, upserted by id; the student page's feed
// (student_feed.js) is another LiveFeed.

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
 * One authenticated WebSocket with reconnects. Subclasses implement handle(message) (return true
 * for a snapshot: the link counts as live from then) and may implement reset() (on stop).
 * Events: 'status' (detail: {status, retryInMs}), 'unauthorized'.
 * Statuses: connecting, live, reconnecting, forbidden, stopped.
 */
export class LiveFeed extends EventTarget {
  constructor(path) {
    super();
    this.path = path;
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
    this.reset();
    this.attempt = 0;
    this.connectedOnce = false;
    this.setStatus('stopped');
  }

  /** Forget what the feed knew (called by stop). */
  reset() {}

  /** Act on one parsed message; true when it was a snapshot. */
  handle() {
    return false;
  }

  reconnectNow() {
    if (this.stopped || this.status === 'live' || this.status === 'connecting') return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${window.location.host}${this.path}`;
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
    if (!message || typeof message !== 'object') return;
    if (this.handle(message)) {
      this.attempt = 0;
      this.connectedOnce = true;
      if (this.status !== 'live') this.setStatus('live');
    }
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
    this.scheduleRetry(); // CLOSE_TOO_SLOW and every other close: a fresh snapshot will follow
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

/** The open alerts, live. Events: those of LiveFeed, 'snapshot' (detail: {added}), 'alert'
 * (detail: {alert, previous}). */
export class AlertFeed extends LiveFeed {
  constructor() {
    super('/api/ws/alerts');
    this.alerts = new Map();
  }

  reset() {
    this.alerts = new Map();
  }

  /** Open alerts in console order. */
  sorted() {
    return [...this.alerts.values()].sort(consoleOrder);
  }

  handle(message) {
    if (message.type === 'snapshot') {
      const before = new Set(this.alerts.keys());
      this.alerts = new Map(message.alerts.map((a) => [a.id, a]));
      // live before the event, as the views read feed.status in their snapshot handler
      this.attempt = 0;
      this.connectedOnce = true;
      this.setStatus('live');
      const added = message.alerts.filter((a) => !before.has(a.id));
      this.dispatchEvent(new CustomEvent('snapshot', { detail: { added } }));
      return true;
    }
    if (message.type === 'alert' && message.alert) this.applyLocal(message.alert);
    return false;
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
}
