// The student's service rooms: every machine of their building as a card, grouped by room, live
// from the student feed. Cards are keyed by device and refilled only when what they show changed
// (no re-render of the page on each message). A running machine offers "notify me when it
// finishes"; a room with no free washer (or dryer) offers "notify me when one is free".

import { api } from '../api.js';
import { h, fill } from '../dom.js';
import { t, label, fmtClock } from '../i18n.js';
import { isOpenWatch } from '../student_feed.js';
import { askNotificationPermission } from '../notices.js';
import { messageLine, showError, busy } from '../ui.js';
import { faultText } from './board.js';

const FREE_WATCH_KINDS = ['washer', 'dryer']; // machines one queues for
const CYCLE_KINDS = new Set(FREE_WATCH_KINDS); // machines whose run finishes (a reminder helps)
const KIND_ORDER = ['washer', 'dryer', 'hair_dryer', 'water_dispenser'];
const TICK_MS = 15000; // the minutes left count down between messages
const WATCHES_SHOWN = 20;

/** "还剩 12 分钟": whole minutes, rounded up; under a minute says so. */
export function minutesLeftText(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 60) return t('student.left_under_minute');
  return t('student.left_minutes', { minutes: Math.ceil(seconds / 60) });
}

function roomKey(building, room) {
  return `${building}/${room}`;
}

function deviceIdOf(key) {
  return String(key || '').split('/').pop();
}

export function mount(root, args, ctx) {
  const feed = ctx.studentFeed;
  const cards = new Map(); // device_key -> {el, sig}
  const rooms = new Map(); // "building/room" -> {el, cardsEl, actionsEl, sig}
  const message = messageLine();
  message.id = 'rooms-message';
  const watchList = h('ul', { class: 'watch-list', id: 'watch-list' });
  const watchEmpty = h('p', { class: 'muted', id: 'watch-empty' }, t('student.watches.none'));
  const roomsEl = h('div', { class: 'svc-rooms', id: 'rooms', 'aria-busy': 'true' }, h('p', { class: 'muted' }, t('common.loading')));
  const updated = h('p', { class: 'muted small', id: 'rooms-updated' });

  fill(
    root,
    h('h1', null, t('student.rooms.title')),
    message,
    roomsEl,
    updated,
    h('section', { class: 'watches', id: 'watches' }, h('h2', null, t('student.watches.title')), watchEmpty, watchList),
  );

  function openWatches() {
    return feed.watchList().filter(isOpenWatch);
  }

  function finishedWatchOf(device, open) {
    return open.find((w) => w.kind === 'finished' && w.device_key === device.device_key) || null;
  }

  function freeWatchOf(building, room, kind, open) {
    return open.find((w) => w.kind === 'free' && w.building === building && w.device_kind === kind && (w.room === room || w.room === null)) || null;
  }

  async function addWatch(button, body) {
    askNotificationPermission(); // the first press asks; the answer is not awaited
    const watch = await busy(button, () => api('/api/student/watches', { method: 'POST', body }), message);
    if (watch) feed.applyWatch(watch);
  }

  function statusLine(d) {
    // a water dispenser heating or a hair dryer in use is busy, not a cycle with an end
    if (d.board_status === 'running' && !CYCLE_KINDS.has(d.kind)) return label('status', d.status);
    if (d.board_status === 'running') {
      const left = minutesLeftText(feed.remainingNow(d));
      return left ? `${label('board', 'running')} · ${left}` : label('board', 'running');
    }
    if (d.board_status === 'fault') {
      return d.faults.length ? `${label('board', 'fault')}: ${faultText(d.faults)}` : label('board', 'fault');
    }
    if (d.board_status === 'finished') return t('student.finished_collect');
    return label('board', d.board_status);
  }

  function fillCard(el, d, watch) {
    el.className = `machine m-${d.board_status}`;
    el.dataset.status = d.board_status;
    el.dataset.kind = d.kind;
    let action = null;
    if (watch) {
      action = h('p', { class: 'watching small', dataset: { watchId: String(watch.id) } }, t('student.watching_finish'));
    } else if (d.board_status === 'running' && CYCLE_KINDS.has(d.kind)) {
      const button = h('button', { type: 'button', class: 'primary notify-finished' }, t('student.notify_finished'));
      button.addEventListener('click', () => addWatch(button, { kind: 'finished', device_key: d.device_key }));
      action = button;
    }
    fill(
      el,
      h('div', { class: 'machine-head' }, h('span', { class: 'machine-kind' }, label('kind', d.kind)), h('span', { class: 'machine-id' }, d.device_id)),
      h('div', { class: `machine-status badge st-${d.board_status}` }, statusLine(d)),
      action,
    );
  }

  function fillRoomActions(el, building, room, devices, open) {
    const parts = [];
    for (const kind of FREE_WATCH_KINDS) {
      const ofKind = devices.filter((d) => d.kind === kind);
      if (!ofKind.length || ofKind.some((d) => d.board_status === 'free')) continue;
      const watch = freeWatchOf(building, room, kind, open);
      if (watch) {
        parts.push(h('p', { class: 'watching small', dataset: { kind, watchId: String(watch.id) } }, t('student.watching_free', { kind: label('kind', kind) })));
      } else {
        const button = h('button', { type: 'button', class: 'notify-free', dataset: { kind } }, t('student.notify_free', { kind: label('kind', kind) }));
        button.addEventListener('click', () => addWatch(button, { kind: 'free', device_kind: kind, room, building }));
        parts.push(button);
      }
    }
    fill(el, ...parts);
  }

  /** Place rooms and cards (reusing card elements) when machines came or went. */
  function layout(devices) {
    const buildings = new Set(devices.map((d) => d.building));
    const frag = document.createDocumentFragment();
    rooms.clear();
    for (const d of devices) {
      const key = roomKey(d.building, d.room);
      let room = rooms.get(key);
      if (!room) {
        const title = buildings.size > 1 ? t('student.room_in', { building: d.building, room: d.room }) : t('board.room', { room: d.room });
        const cardsEl = h('div', { class: 'machines' });
        const actionsEl = h('div', { class: 'room-actions' });
        room = { el: h('section', { class: 'svc-room', dataset: { building: d.building, room: d.room } }, h('h2', null, title), cardsEl, actionsEl), cardsEl, actionsEl, sig: null };
        rooms.set(key, room);
        frag.append(room.el);
      }
      room.cardsEl.append(cards.get(d.device_key).el);
    }
    roomsEl.replaceChildren(frag);
  }

  /** Bring the page in line with the feed's store, touching only what changed. */
  function render() {
    if (!feed.loaded) return;
    const kindRank = (d) => (KIND_ORDER.includes(d.kind) ? KIND_ORDER.indexOf(d.kind) : KIND_ORDER.length);
    // by room as the feed orders them, washers first within a room
    const devices = feed.deviceList().sort((a, b) => (a.building === b.building && a.room === b.room ? kindRank(a) - kindRank(b) : 0));
    const open = openWatches();
    let structural = false;
    const seen = new Set();
    for (const d of devices) {
      seen.add(d.device_key);
      let card = cards.get(d.device_key);
      if (!card) {
        card = { el: h('article', { class: 'machine', dataset: { key: d.device_key } }), sig: null };
        cards.set(d.device_key, card);
        structural = true;
      }
      const watch = finishedWatchOf(d, open);
      const sig = [d.board_status, d.faults.join(','), statusLine(d), watch ? watch.id : ''].join('|');
      if (card.sig !== sig) {
        fillCard(card.el, d, watch);
        card.sig = sig;
      }
    }
    for (const key of [...cards.keys()]) {
      if (!seen.has(key)) {
        cards.get(key).el.remove();
        cards.delete(key);
        structural = true;
      }
    }
    if (structural || roomsEl.getAttribute('aria-busy') === 'true') {
      layout(devices);
      roomsEl.setAttribute('aria-busy', 'false');
    }
    if (!devices.length) fill(roomsEl, h('p', { class: 'empty muted', id: 'rooms-empty' }, t('student.rooms.none')));
    for (const [key, room] of rooms) {
      const inRoom = devices.filter((d) => roomKey(d.building, d.room) === key);
      const [building, roomId] = [inRoom[0].building, inRoom[0].room];
      const sig = FREE_WATCH_KINDS.map((kind) => {
        const ofKind = inRoom.filter((d) => d.kind === kind);
        const watch = freeWatchOf(building, roomId, kind, open);
        return `${ofKind.length}:${ofKind.some((d) => d.board_status === 'free')}:${watch ? watch.id : ''}`;
      }).join('|');
      if (room.sig !== sig) {
        fillRoomActions(room.actionsEl, building, roomId, inRoom, open);
        room.sig = sig;
      }
    }
    fill(updated, t('board.updated', { at: fmtClock(new Date()) }));
    roomsEl.dataset.loaded = '1';
  }

  function watchText(w) {
    const kind = label('kind', w.device_kind) || t('student.machine');
    if (w.kind === 'finished') {
      const device = feed.devices.get(w.device_key);
      const where = [device ? device.room : w.room, device ? device.device_id : deviceIdOf(w.device_key)].filter(Boolean).join(' · ');
      return t('student.watch.finished', { kind, place: where });
    }
    return w.room ? t('student.watch.free_room', { kind, room: w.room }) : t('student.watch.free_any', { kind });
  }

  function renderWatches() {
    const list = feed.watchList().slice(0, WATCHES_SHOWN);
    watchEmpty.hidden = list.length > 0;
    fill(
      watchList,
      ...list.map((w) => {
        const state = w.cancelled_at ? 'cancelled' : w.fired_at ? 'fired' : 'open';
        let tail;
        if (state === 'open') {
          const button = h('button', { type: 'button', class: 'watch-cancel' }, t('student.watch.cancel'));
          button.addEventListener('click', async () => {
            const done = await busy(button, async () => {
              await api(`/api/student/watches/${w.id}`, { method: 'DELETE' });
              return true;
            }, message);
            if (done) feed.markCancelled(w.id);
          });
          tail = button;
        } else if (state === 'fired') {
          tail = h('span', { class: 'badge st-finished' }, t('student.watch.fired', { at: fmtClock(new Date(w.fired_at)) }));
        } else {
          tail = h('span', { class: 'badge st-offline' }, t('student.watch.cancelled'));
        }
        return h('li', { class: `watch watch-${state}`, dataset: { id: String(w.id), state, kind: w.kind } }, h('span', { class: 'watch-text' }, watchText(w)), tail);
      }),
    );
  }

  const onDevices = () => render();
  const onWatches = () => {
    render();
    renderWatches();
  };
  feed.addEventListener('devices', onDevices);
  feed.addEventListener('watches', onWatches);

  if (feed.loaded) onWatches();
  else {
    // The socket's snapshot usually comes first; the REST answers cover a slow or blocked socket.
    Promise.all([api('/api/student/rooms'), api('/api/student/watches')]).then(
      ([devices, watches]) => {
        if (!feed.loaded) feed.replace(devices, watches);
      },
      (err) => showError(message, err),
    );
  }
  const ticker = setInterval(render, TICK_MS);
  return () => {
    clearInterval(ticker);
    feed.removeEventListener('devices', onDevices);
    feed.removeEventListener('watches', onWatches);
  };
}
