// The menu admin: every product by category, on the menu or not; create,
// edit (price included), take off the menu and put back. What the product
// service refuses is shown next to the field it names.

import { $, Problem, call, el, explain, keepingFocus, money, staffSession } from './common.js';

const FIELDS = ['name', 'category', 'price_cents', 'preparation_minutes', 'description', 'image_url'];
let session = null;
let categories = [];
let products = [];
let editing = null;

async function load() {
  const [cats, active, inactive] = await Promise.all([
    call('/categories'),
    (async () => {
      const all = [];
      for (let page = 1; ; page++) {
        const { data } = await call(`/products?per_page=100&page=${page}`);
        all.push(...data.items);
        if (all.length >= data.total || data.items.length === 0) return all;
      }
    })(),
    call('/products/inactive', { token: session.token }),
  ]);
  categories = cats.data.map((c) => c.name);
  products = [...active, ...inactive.data];
  render();
}

function render() {
  keepingFocus(draw);
}

function draw() {
  $('#f-category').replaceChildren(...categories.map((c) => el('option', { value: c, text: c })));
  $('#catalog').replaceChildren(...categories.map((category) => {
    const mine = products.filter((p) => p.category === category)
      .sort((a, b) => a.name.localeCompare(b.name, 'pt-BR'));
    const id = `cat-${categories.indexOf(category)}`;
    return el('section', { 'aria-labelledby': id },
      el('h2', { id, text: category }),
      el('table', {},
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', text: 'Produto' }),
          el('th', { scope: 'col', text: 'Preço' }),
          el('th', { scope: 'col', text: 'Situação' }),
          el('th', { scope: 'col', text: 'Ações' }),
        )),
        el('tbody', {}, mine.map(row)),
      ),
    );
  }));
}

function row(p) {
  return el('tr', { 'data-product': p.name },
    el('th', { scope: 'row', text: p.name }),
    el('td', { text: money(p.price_cents) }),
    el('td', p.active ? { text: 'No cardápio' } : { class: 'off', text: 'Fora do cardápio' }),
    el('td', { class: 'row-actions' },
      el('button', { type: 'button', id: `edit-${p.id}`, class: 'secondary', 'aria-label': `Editar: ${p.name}`, onclick: () => edit(p), text: 'Editar' }),
      p.active
        ? el('button', { type: 'button', id: `toggle-${p.id}`, 'aria-label': `Tirar do cardápio: ${p.name}`, onclick: () => setActive(p, false), text: 'Tirar do cardápio' })
        : el('button', { type: 'button', id: `toggle-${p.id}`, class: 'go', 'aria-label': `Voltar ao cardápio: ${p.name}`, onclick: () => setActive(p, true), text: 'Voltar ao cardápio' }),
    ),
  );
}

/** Closes the form and gives the focus back to what opened it. */
function close() {
  $('#product-form').hidden = true;
  const opener = editing && document.getElementById(`edit-${editing.id}`);
  (opener || $('#new')).focus();
}

function clearErrors() {
  for (const f of FIELDS) {
    $(`#f-${f}-error`).textContent = '';
    $(`#f-${f}`).removeAttribute('aria-invalid');
  }
  $('#error').textContent = '';
}

function edit(p) {
  editing = p;
  clearErrors();
  $('#form-title').textContent = p ? `Editar ${p.name}` : 'Novo produto';
  $('#f-name').value = p?.name || '';
  $('#f-category').value = p?.category || categories[0];
  $('#f-price_cents').value = p ? (p.price_cents / 100).toFixed(2).replace('.', ',') : '';
  $('#f-preparation_minutes').value = p ? String(p.preparation_minutes) : '';
  $('#f-description').value = p?.description || '';
  $('#f-image_url').value = p?.image_url || '';
  $('#product-form').hidden = false;
  $('#f-name').focus();
}

/** "12,90", "1.234,50" or "12.90" in cents; NaN when it is not a price. */
function cents(text) {
  let t = text.trim().replace(/^R\$\s*/, '');
  if (t.includes(',')) t = t.replace(/\./g, '').replace(',', '.');
  return /^\d+(\.\d{1,2})?$/.test(t) ? Math.round(Number(t) * 100) : NaN;
}

function showErrors(e) {
  if (!(e instanceof Problem) || !e.errors.length) {
    $('#error').textContent = explain(e);
    return;
  }
  for (const { field, message } of e.errors) {
    const name = FIELDS.includes(field) ? field : 'name';
    $(`#f-${name}-error`).textContent = message;
    $(`#f-${name}`).setAttribute('aria-invalid', 'true');
  }
  const first = e.errors.map((x) => x.field).find((f) => FIELDS.includes(f));
  if (first) $(`#f-${first}`).focus();
}

function input(p, overrides = {}) {
  return {
    name: p.name,
    description: p.description,
    category: p.category,
    price_cents: p.price_cents,
    image_url: p.image_url || null,
    preparation_minutes: p.preparation_minutes,
    ...overrides,
  };
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const price = cents($('#f-price_cents').value);
  if (Number.isNaN(price)) {
    $('#f-price_cents-error').textContent = 'Informe o preço em reais, como 12,90.';
    $('#f-price_cents').setAttribute('aria-invalid', 'true');
    $('#f-price_cents').focus();
    return;
  }
  const minutes = $('#f-preparation_minutes').value.trim();
  const body = {
    name: $('#f-name').value,
    description: $('#f-description').value,
    category: $('#f-category').value,
    price_cents: price,
    image_url: $('#f-image_url').value.trim() || null,
    preparation_minutes: /^\d+$/.test(minutes) ? Number(minutes) : -1,
  };
  try {
    if (editing) await call(`/products/${editing.id}`, { method: 'PUT', token: session.token, body });
    else await call('/products', { method: 'POST', token: session.token, body });
    $('#done').textContent = `${body.name} salvo.`;
    await load();
    close();
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return session.end('Sua sessão expirou. Entre de novo.');
    showErrors(e);
  }
}

async function setActive(p, active) {
  $('#error').textContent = '';
  try {
    if (active) await call(`/products/${p.id}`, { method: 'PUT', token: session.token, body: input(p, { active: true }) });
    else await call(`/products/${p.id}`, { method: 'DELETE', token: session.token });
    $('#done').textContent = active ? `${p.name} voltou ao cardápio.` : `${p.name} saiu do cardápio.`;
    await load();
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return session.end('Sua sessão expirou. Entre de novo.');
    $('#error').textContent = explain(e);
  }
}

session = staffSession('admin-token', $('#admin'), {
  start(s) {
    session = s;
    load().catch((e) => {
      if (e instanceof Problem && e.status === 401) return s.end('Sua sessão expirou. Entre de novo.');
      if (e instanceof Problem && e.status === 403) return s.end('Esta conta não pode editar o cardápio.');
      $('#error').textContent = explain(e);
    });
  },
});
$('#new').addEventListener('click', () => edit(null));
$('#cancel').addEventListener('click', close);
$('#product-form').addEventListener('submit', save);
$('#logout').addEventListener('click', () => session.end());
