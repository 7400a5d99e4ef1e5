// The alert tone, generated with WebAudio (no audio file). Browsers start audio only after a
// user gesture, so the context is created (or resumed) on the first click or key press.

const MUTE_KEY = 'dormguard.muted';
let context = null;
let muted = localStorage.getItem(MUTE_KEY) === '1';
let beeps = 0;
const listeners = new Set();

function notify() {
  for (const listener of listeners) listener();
}

function unlock() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  try {
    if (!context) context = new Ctx();
    if (context.state === 'suspended') context.resume().then(notify, () => {});
  } catch {
    context = null;
  }
  notify();
}

/** Arm the unlock on the page's first user gesture. */
export function installSoundUnlock() {
  for (const type of ['pointerdown', 'keydown']) {
    document.addEventListener(type, unlock, { capture: true, passive: true });
  }
}

export function soundReady() {
  return Boolean(context && context.state === 'running');
}

export function isMuted() {
  return muted;
}

export function setMuted(value) {
  muted = Boolean(value);
  localStorage.setItem(MUTE_KEY, muted ? '1' : '0');
  notify();
}

export function onSoundChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Two short square-wave tones; louder and higher for critical alerts. */
export function beep(severity = 3) {
  if (muted || !context) return false;
  const now = context.currentTime;
  const pitch = severity >= 4 ? 1046 : 880;
  for (const offset of [0, 0.22]) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = 'square';
    osc.frequency.value = pitch;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(severity >= 4 ? 0.25 : 0.15, now + offset + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.16);
    osc.connect(gain).connect(context.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.18);
  }
  beeps += 1;
  document.body.dataset.beeps = String(beeps);
  return true;
}
