// The facilities board: every appliance of every service room as a tile coloured by state.
// One request per poll for the whole board (or one building); tiles are keyed by device and
// only the ones whose state changed are touched, so 2,000 appliances stay cheap to refresh.

import { api } from '../api.js';
import { h, fill, field } from '../dom.js';
import { t, label, fmtTime, fmtClock, fmtDuration, fmtNumber } from '../i18n.js';
import { messageLine, showError, every } from '../ui.js';

export const BOARD_STATUSES = ['free', 'running', 'finished', 'fault', 'offline', 'unknown'];
const POLL_MS = 3000;
const DEVICE_ALERT_TYPES = new Set(['appliance_fault', 'device_offline']);

export function deviceHref(key) {
  return `#/device/${encodeURIComponent(key)}`;
}

export function statusText(device) {
  if (device.board_status === 'running' && device.remaining_s !== null && device.remaining_s !== undefined) {
    return t('board.running_left', { time: fmtDuration(device.remaining_s) });
  }
  return label('board', device.board_status);
}

export function faultText(faults) {
  return faults.map((f) => label('fault', f)).join(', ');
}

function signature(d) {
  return [d.board_status, d.status, d.remaining_s, d.faults.join(','), d.online, d.updated_at, d.power_w, d.temperature_c].join('|');
}

export function mount(root, args, ctx) {
  const state = {
    building: sessionStorage.getItem('dormguard.board.building') || '',
    status: '',
    text: '',
    devices: [],
    buildings: new Set(),
  };
  const tiles = new Map(); // device_key -> {el, sig, device}
  const rooms = new Map(); // "building/room" -> {el, tiles}
  const sections = new Map(); // building -> {el, rooms}

  const buildingSelect = h('select', { id: 'board-building', 'aria-label': t('common.building') });
  const search = h('input', { type: 'search', id: 'board-search', placeholder: t('board.search'), maxlength: '64' });
  const chips = h('div', { class: 'chips', id: 'board-status' });
  const updated = h('span', { class: 'muted small', id: 'board-updated' });
  const message = messageLine();
  const faults = h('section', { class: 'faults', id: 'board-faults', hidden: true });
  const grid = h('div', { class: 'board', id: 'board' });

  fill(
    root,
    h('h1', null, t('board.title')),
    h('div', { class: 'toolbar' }, field(t('common.building'), buildingSelect), field(t('board.find'), search), updated),
    chips,
    message,
    faults,
    grid,
  );

  buildingSelect.addEventListener('change', () => {
    state.building = buildingSelect.value;
    sessionStorage.setItem('dormguard.board.building', state.building);
    load();
  });
  search.addEventListener('input', () => {
    state.text = search.value.trim().toLowerCase();
    applyFilter();
  });

  function renderBuildings() {
    const options = [['', t('common.all_buildings')], ...[...state.buildings].sort().map((b) => [b, b])];
    if (buildingSelect.options.length === options.length && buildingSelect.value === state.building) return;
    fill(buildingSelect, ...options.map(([value, text]) => h('option', { value, selected: value === state.building }, text)));
  }

  function renderChips() {
    const counts = Object.fromEntries(BOARD_STATUSES.map((s) => [s, 0]));
    for (const d of state.devices) counts[d.board_status] = (counts[d.board_status] || 0) + 1;
    const chip = (status, text) =>
      h('button', { type: 'button', class: ['chip', status ? `st-${status}` : '', state.status === status ? 'active' : ''], dataset: { status }, onclick: () => { state.status = state.status === status ? '' : status; renderChips(); applyFilter(); } }, text);
    fill(
      chips,
      chip('', t('board.all', { count: state.devices.length })),
      ...BOARD_STATUSES.filter((s) => counts[s] > 0 || s !== 'unknown').map((s) => chip(s, `${label('board', s)} ${counts[s]}`)),
    );
  }

  function fillTile(el, d) {
    el.className = `tile st-${d.board_status}`;
    el.dataset.status = d.board_status;
    el.title = `${d.device_key} · ${label('kind', d.kind)} · ${label('status', d.status)}${d.faults.length ? ` · ${faultText(d.faults)}` : ''}`;
    const extra = [];
    if (d.faults.length) extra.push(h('div', { class: 'tile-faults' }, faultText(d.faults)));
    else if (d.board_status === 'running' && d.power_w !== null) extra.push(h('div', { class: 'small' }, `${fmtNumber(d.power_w, 0)} W`));
    else if (d.temperature_c !== null && d.kind === 'water_dispenser') extra.push(h('div', { class: 'small' }, `${fmtNumber(d.temperature_c, 0)} °C`));
    fill(
      el,
      h('div', { class: 'tile-id' }, d.device_id),
      h('div', { class: 'tile-kind small' }, label('kind', d.kind)),
      h('div', { class: 'tile-status' }, statusText(d)),
      ...extra,
    );
  }

  function roomKey(d) {
    return `${d.building}/${d.room}`;
  }

  /** Rebuild the grid's structure (buildings, rooms) reusing existing tiles, in one fragment. */
  function rebuild() {
    const frag = document.createDocumentFragment();
    sections.clear();
    rooms.clear();
    for (const d of state.devices) {
      let section = sections.get(d.building);
      if (!section) {
        const roomsEl = h('div', { class: 'rooms' });
        section = { el: h('section', { class: 'building', dataset: { building: d.building } }, h('h2', null, t('board.building', { building: d.building })), roomsEl), roomsEl };
        sections.set(d.building, section);
        frag.append(section.el);
      }
      let room = rooms.get(roomKey(d));
      if (!room) {
        const tilesEl = h('div', { class: 'tiles' });
        room = { el: h('div', { class: 'room', dataset: { room: d.room } }, h('h3', null, t('board.room', { room: d.room })), tilesEl), tilesEl, building: d.building };
        rooms.set(roomKey(d), room);
        section.roomsEl.append(room.el);
      }
      room.tilesEl.append(tiles.get(d.device_key).el);
    }
    grid.replaceChildren(frag);
  }

  function update(devices) {
    state.devices = devices;
    let structural = false;
    const seen = new Set();
    for (const d of devices) {
      seen.add(d.device_key);
      state.buildings.add(d.building);
      let entry = tiles.get(d.device_key);
      if (!entry) {
        const el = h('a', { class: 'tile', href: deviceHref(d.device_key), dataset: { key: d.device_key } });
        entry = { el, sig: null, device: d };
        tiles.set(d.device_key, entry);
        structural = true;
      }
      entry.device = d;
      const sig = signature(d);
      if (entry.sig !== sig) {
        fillTile(entry.el, d);
        entry.sig = sig;
        entry.searchText = `${d.device_key} ${d.kind} ${label('kind', d.kind)}`.toLowerCase();
      }
    }
    for (const key of [...tiles.keys()]) {
      if (!seen.has(key)) {
        tiles.get(key).el.remove();
        tiles.delete(key);
        structural = true;
      }
    }
    if (structural) rebuild();
    renderBuildings();
    renderChips();
    renderFaults();
    applyFilter();
    fill(updated, t('board.updated', { at: fmtClock(new Date()) }));
    if (!grid.dataset.loaded) grid.dataset.loaded = '1';
  }

  function renderFaults() {
    const broken = state.devices.filter((d) => d.board_status === 'fault' || d.board_status === 'offline');
    faults.hidden = broken.length === 0;
    if (!broken.length) return;
    fill(
      faults,
      h('h2', null, t('board.faults', { count: broken.length })),
      h('ul', null, broken.slice(0, 50).map((d) => h('li', { class: `st-${d.board_status}` },
        h('a', { href: deviceHref(d.device_key) }, `${d.building} / ${d.room} / ${d.device_id}`), ' · ', label('kind', d.kind), ' · ',
        d.board_status === 'offline' ? label('board', 'offline') : faultText(d.faults),
        h('span', { class: 'muted' }, ` · ${t('board.since', { at: fmtTime(d.since || d.updated_at) })}`)))),
      broken.length > 50 ? h('p', { class: 'muted' }, t('board.more_faults', { count: broken.length - 50 })) : null,
    );
  }

  function applyFilter() {
    const visibleRooms = new Set();
    for (const entry of tiles.values()) {
      const d = entry.device;
      const show = (!state.status || d.board_status === state.status) && (!state.text || entry.searchText.includes(state.text));
      if (entry.el.hidden === show) entry.el.hidden = !show; // touch the DOM only on change
      if (show) visibleRooms.add(roomKey(d));
    }
    const visibleBuildings = new Set();
    for (const [key, room] of rooms) {
      const show = visibleRooms.has(key);
      if (room.el.hidden === show) room.el.hidden = !show;
      if (show) visibleBuildings.add(room.building);
    }
    for (const [building, section] of sections) {
      const show = visibleBuildings.has(building);
      if (section.el.hidden === show) section.el.hidden = !show;
    }
  }

  let inFlight = false;
  async function load() {
    if (inFlight) return;
    inFlight = true;
    try {
      const devices = await api('/api/devices', { query: { building: state.building } });
      update(devices);
      message.hidden = true;
    } catch (err) {
      showError(message, err);
    } finally {
      inFlight = false;
    }
  }

  // A device alert means a state just changed: refresh now rather than at the next poll.
  const onAlert = (event) => {
    if (DEVICE_ALERT_TYPES.has(event.detail.alert.type)) load();
  };
  if (ctx.feed) ctx.feed.addEventListener('alert', onAlert);
  if (state.building) state.buildings.add(state.building);
  renderBuildings();
  load();
  const stop = every(POLL_MS, load);
  return () => {
    stop();
    if (ctx.feed) ctx.feed.removeEventListener('alert', onAlert);
  };
}
