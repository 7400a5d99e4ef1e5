// The student page's live feed (/api/ws/student): the appliances of the student's buildings and
// their watches, from a snapshot (sent again at every server ping) and then every change; a
// notice when one of their watches fired. Views read the store and listen to its events.

import { LiveFeed } from './feed.js';

/** Whether a watch still waits (neither fired nor cancelled). */
export function isOpenWatch(watch) {
  return !watch.fired_at && !watch.cancelled_at;
}

function newestFirst(a, b) {
  return Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id;
}

/**
 * Events: those of LiveFeed, 'devices' (detail: {changed: [DeviceOut], structural}), 'watches',
 * 'notice' (detail: the server's notice message).
 */
export class StudentFeed extends LiveFeed {
  constructor() {
    super('/api/ws/student');
    this.reset();
  }

  reset() {
    this.devices = new Map(); // device_key -> DeviceOut
    this.receivedAt = new Map(); // device_key -> Date.now() when its remaining_s was read
    this.watches = new Map(); // id -> WatchOut
    this.loaded = false;
  }

  /** Watches newest first. */
  watchList() {
    return [...this.watches.values()].sort(newestFirst);
  }

  /** Appliances by building, room and device id (the API's order). */
  deviceList() {
    return [...this.devices.values()].sort(
      (a, b) => a.building.localeCompare(b.building) || a.room.localeCompare(b.room, undefined, { numeric: true }) || a.device_id.localeCompare(b.device_id, undefined, { numeric: true }),
    );
  }

  /** Seconds left on a running machine now, counted down from when its state was read. */
  remainingNow(device) {
    if (device.remaining_s === null || device.remaining_s === undefined) return null;
    const read = this.receivedAt.get(device.device_key) || Date.now();
    return Math.max(0, device.remaining_s - (Date.now() - read) / 1000);
  }

  handle(message) {
    if (message.type === 'snapshot') {
      this.replace(message.devices || [], message.watches || []);
      return true;
    }
    if (message.type === 'device' && message.device) {
      const changed = this.upsertDevice(message.device);
      if (changed) this.dispatchEvent(new CustomEvent('devices', { detail: { changed: [message.device], structural: changed === 'new' } }));
    } else if (message.type === 'notice') {
      const watch = this.watches.get(message.watch_id);
      if (watch && !watch.fired_at) {
        this.watches.set(watch.id, { ...watch, fired_at: message.at, fired_device_key: (message.device || {}).device_key || null });
        this.dispatchEvent(new CustomEvent('watches'));
      }
      this.dispatchEvent(new CustomEvent('notice', { detail: message }));
    }
    return false;
  }

  /** Everything as the server sees it now (a snapshot, or the REST answers before one). */
  replace(devices, watches) {
    const before = new Set(this.devices.keys());
    const changed = [];
    for (const device of devices) {
      if (this.upsertDevice(device)) changed.push(device);
    }
    const keys = new Set(devices.map((d) => d.device_key));
    let structural = devices.some((d) => !before.has(d.device_key));
    for (const key of before) {
      if (!keys.has(key)) {
        this.devices.delete(key);
        this.receivedAt.delete(key);
        structural = true;
      }
    }
    this.watches = new Map(watches.map((w) => [w.id, w]));
    this.loaded = true;
    this.dispatchEvent(new CustomEvent('devices', { detail: { changed, structural } }));
    this.dispatchEvent(new CustomEvent('watches'));
  }

  /** Store one appliance; 'new', 'changed' or null (nothing new: an older or equal state). */
  upsertDevice(device) {
    const previous = this.devices.get(device.device_key);
    if (previous && Date.parse(previous.updated_at) > Date.parse(device.updated_at)) return null;
    if (previous && JSON.stringify(previous) === JSON.stringify(device)) return null;
    this.devices.set(device.device_key, device);
    if (!previous || previous.remaining_s !== device.remaining_s || previous.updated_at !== device.updated_at) {
      this.receivedAt.set(device.device_key, Date.now());
    }
    return previous ? 'changed' : 'new';
  }

  /** A watch created or cancelled on this page (the API's answer). */
  applyWatch(watch) {
    this.watches.set(watch.id, watch);
    this.dispatchEvent(new CustomEvent('watches'));
  }

  /** A watch cancelled on this page (DELETE answers 204, no body). */
  markCancelled(id) {
    const watch = this.watches.get(id);
    if (watch) this.applyWatch({ ...watch, cancelled_at: new Date().toISOString() });
  }
}
