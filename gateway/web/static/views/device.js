// One appliance: its state, faults, usage figures, a chart of one field and its state history.

import { api, keyPath } from '../api.js';
import { h, fill, select, field, table } from '../dom.js';
import { lineChart } from '../chart.js';
import { t, label, fmtTime, fmtClock, fmtNumber } from '../i18n.js';
import { messageLine, showError, badge, every } from '../ui.js';
import { statusText, faultText } from './board.js';

const FIELDS = {
  power_w: 'W',
  temperature_c: '°C',
  energy_kwh: 'kWh',
  remaining_s: 's',
};
const RANGES = [[3600, '1h'], [6 * 3600, '6h'], [24 * 3600, '24h'], [7 * 24 * 3600, '7d']];
const BUSY = new Set(['running', 'in_use', 'heating']);

function defaultField(device) {
  return device.kind === 'water_dispenser' ? 'temperature_c' : 'power_w';
}

/** Samples of one field: telemetry first, the state messages when there is no telemetry. */
async function fetchSeries(key, fieldName, since) {
  for (const measurement of ['appliance', 'appliance_state']) {
    const series = await api(`/api/devices/${keyPath(key)}/series`, { query: { field: fieldName, measurement, since, limit: 5000 } });
    if (series.samples.length) return series;
  }
  return { samples: [], measurement: 'appliance', field: fieldName };
}

function cyclesStarted(history) {
  // history is newest first: count changes into a busy status
  let cycles = 0;
  for (let i = history.length - 1; i >= 0; i -= 1) {
    const older = history[i + 1];
    if (BUSY.has(history[i].status) && (!older || !BUSY.has(older.status))) cycles += 1;
  }
  return cycles;
}

export function mount(root, args) {
  const key = args.join('/');
  let chosenField = null;
  let range = 6 * 3600;
  let alive = true;

  const message = messageLine();
  const head = h('section', { class: 'device-head', id: 'device-head' }, h('p', { class: 'muted' }, t('common.loading')));
  const figures = h('div', { class: 'cards', id: 'device-figures' });
  const fieldSelect = select({ id: 'series-field' }, Object.keys(FIELDS).map((f) => [f, t(`field.${f}`)]), 'power_w');
  const rangeSelect = select({ id: 'series-range' }, RANGES.map(([s, name]) => [String(s), t(`range.${name}`)]), String(range));
  const chartBox = h('div', { class: 'chart-box', id: 'device-chart' });
  const history = h('section', { id: 'device-history' });

  fill(
    root,
    h('p', null, h('a', { href: '#/board' }, `← ${t('device.back')}`)),
    head,
    message,
    figures,
    h('h2', null, t('device.chart')),
    h('div', { class: 'toolbar' }, field(t('device.field'), fieldSelect), field(t('device.range'), rangeSelect)),
    chartBox,
    h('h2', null, t('device.history')),
    history,
  );

  fieldSelect.addEventListener('change', () => { chosenField = fieldSelect.value; loadChart(); });
  rangeSelect.addEventListener('change', () => { range = Number(rangeSelect.value); loadChart(); });

  let device = null;
  let energy24h = null;

  function renderHead(d) {
    fill(
      head,
      h('h1', null, `${label('kind', d.kind)} ${d.device_id}`),
      h('p', null,
        badge(`st-${d.board_status}`, statusText(d)), ' ',
        h('span', { class: 'muted' }, `${d.building} / ${d.room} · ${label('status', d.status)} · ${d.online ? t('device.online') : t('device.offline')}`)),
      d.faults.length ? h('p', { class: 'fault-line', id: 'device-faults' }, `${t('device.faults')}: ${faultText(d.faults)}`) : null,
      h('p', { class: 'muted small' }, `${t('device.since')}: ${fmtTime(d.since) || '–'} · ${t('device.updated')}: ${fmtTime(d.updated_at)}`),
    );
  }

  function renderFigures(d) {
    const cards = [
      ['device.power', d.power_w === null ? '–' : `${fmtNumber(d.power_w, 0)} W`],
      ['device.temperature', d.temperature_c === null ? '–' : `${fmtNumber(d.temperature_c, 1)} °C`],
      ['device.energy', d.energy_kwh === null ? '–' : `${fmtNumber(d.energy_kwh, 2)} kWh`],
      ['device.energy_24h', energy24h === null ? '–' : `${fmtNumber(energy24h, 2)} kWh`],
      ['device.sessions', d.sessions === null ? '–' : String(d.sessions)],
      ['device.cycles', String(cyclesStarted(d.history))],
    ];
    if (d.filter_life_pct !== null) cards.push(['device.filter', `${fmtNumber(d.filter_life_pct, 0)} %`]);
    fill(figures, ...cards.map(([k, v]) => h('div', { class: 'card' }, h('div', { class: 'big' }, v), h('div', { class: 'muted' }, t(k)))));
  }

  function renderHistory(d) {
    fill(
      history,
      d.history.length === 0
        ? h('p', { class: 'muted' }, t('common.none'))
        : table(
          [t('common.time'), t('device.status'), t('device.faults'), t('device.online'), t('device.energy')],
          d.history.map((r) => [fmtTime(r.ts), label('status', r.status), faultText(r.faults) || '–', r.online ? t('common.yes') : t('common.no'), r.energy_kwh === null ? '–' : fmtNumber(r.energy_kwh, 2)]),
        ),
    );
  }

  async function loadChart() {
    if (!device) return;
    const name = chosenField || defaultField(device);
    fieldSelect.value = name;
    const end = Date.now();
    const since = new Date(end - range * 1000).toISOString();
    try {
      const series = await fetchSeries(key, name, since);
      if (!alive) return;
      const fmtTime2 = range > 24 * 3600 ? fmtTime : fmtClock;
      fill(chartBox, lineChart(series.samples, {
        unit: FIELDS[name], empty: t('device.no_data'), title: t(`field.${name}`),
        formatValue: (v) => fmtNumber(v, 1), formatTime: fmtTime2, start: end - range * 1000, end,
      }));
      chartBox.dataset.samples = String(series.samples.length);
    } catch (err) {
      showError(message, err);
    }
  }

  async function loadEnergy() {
    try {
      const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
      const series = await fetchSeries(key, 'energy_kwh', since);
      const values = series.samples.map((s) => s.value);
      energy24h = values.length >= 2 ? Math.max(0, values[values.length - 1] - values[0]) : null;
    } catch {
      energy24h = null;
    }
  }

  async function load(first) {
    try {
      const d = await api(`/api/devices/${keyPath(key)}`, { query: { history: 100 } });
      if (!alive) return;
      device = d;
      await loadEnergy();
      renderHead(d);
      renderFigures(d);
      renderHistory(d);
      if (first) await loadChart();
      message.hidden = true;
    } catch (err) {
      showError(message, err);
      if (first) fill(head, h('h1', null, key));
    }
  }

  load(true);
  const stop = every(10000, async () => { await load(false); await loadChart(); });
  return () => { alive = false; stop(); };
}
