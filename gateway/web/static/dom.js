// Small DOM builders. Data only ever reaches the page as text nodes or attribute values:
// nothing here (or anywhere in the console) assigns innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'value' && 'value' in el) el.value = value;
    else if (name === 'checked' || name === 'disabled' || name === 'hidden' || name === 'selected') el[name] = Boolean(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h('td', {class: 'x'}, 'text', otherNode). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (attributes set verbatim). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** Replace an element's children with the given nodes or strings. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A <select> with [value, label] options and the given value selected. */
export function select(attrs, options, selected) {
  const el = h('select', attrs);
  for (const [value, label] of options) {
    const option = h('option', { value }, label);
    if (String(value) === String(selected ?? '')) option.selected = true;
    el.append(option);
  }
  return el;
}

/** A labelled form field. */
export function field(label, control) {
  return h('label', { class: 'field' }, h('span', null, label), control);
}

/** A table with a header row; rows are arrays of cells (strings or nodes) or <tr> elements. */
export function table(headers, rows, attrs) {
  const body = h('tbody');
  for (const row of rows) {
    body.append(row instanceof Node ? row : h('tr', null, row.map((cell) => h('td', null, cell))));
  }
  return h('table', attrs || { class: 'grid' }, h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))), body);
}

/** Comma- or space-separated text as a clean list. */
export function splitList(text) {
  return String(text || '').split(/[\s,，]+/).map((x) => x.trim()).filter(Boolean);
}
