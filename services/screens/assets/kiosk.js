// The self-service kiosk: menu, cart, CPF or guest, confirmation, the Pix
// QR code with its countdown, and the order number once paid. The token
// lives in this page's memory only and is forgotten with the order.

import { $, Offline, Problem, call, el, explain, keepingFocus, money } from './common.js';
import * as cpf from './cpf.js';

/** The Mercado Pago point of sale this kiosk is (`?pos=TOTEM01`). */
const POINT_OF_SALE = (() => {
  const pos = new URLSearchParams(location.search).get('pos');
  return pos && /^[A-Za-z0-9_-]{1,40}$/.test(pos) ? pos : undefined;
})();
const IDLE_MS = 90_000;
const PAID_IDLE_MS = 20_000;
/** How long the "still there?" question waits before the order is dropped. */
const WARNING_MS = 15_000;
/** After a QR code's expiry, how long the kiosk waits for the saga to say
 * so before it starts over by itself. */
const PAST_EXPIRY_MS = 60_000;
const POLL_MS = 1_500;
const PAID = new Set(['RECEIVED', 'IN_PREPARATION', 'READY', 'FINISHED']);
const SECTIONS = ['start', 'menu', 'identify', 'confirm', 'pay', 'paid', 'ended'];

/** A call made for a customer who is gone: the kiosk started over. */
class Abandoned extends Error {}

let state;
function fresh() {
  return {
    token: null,
    who: null,
    categories: [],
    products: [],
    category: null,
    cart: new Map(),
    attempt: null,
    order: null,
    drawn: false,
    poll: null,
    countdown: null,
    expiry: null,
  };
}

function show(id) {
  for (const s of SECTIONS) $(`#${s}`).hidden = s !== id;
  $('#restart').hidden = id === 'start' || id === 'paid';
  $('#error').textContent = '';
  const title = $(`#${id} h2`);
  title.setAttribute('tabindex', '-1');
  title.focus();
  idle.arm(id);
}

/** Back to the start when nobody touches the screen for a while, after
 * asking whether anyone is still there. The payment screen waits for the
 * payment instead (see `drawQr`). */
const idle = {
  timers: [],
  screen: 'start',
  arm(screen = this.screen) {
    this.screen = screen;
    this.timers.forEach(clearTimeout);
    this.timers = [];
    if (!$('#idle').hidden) overlay('#idle', false);
    if (screen === 'start' || screen === 'pay') return;
    if (screen === 'paid') {
      this.timers.push(setTimeout(reset, PAID_IDLE_MS));
      return;
    }
    this.timers.push(
      setTimeout(() => overlay('#idle', true, '#idle-stay'), IDLE_MS - WARNING_MS),
      setTimeout(reset, IDLE_MS),
    );
  },
};
for (const kind of ['pointerdown', 'keydown']) {
  document.addEventListener(kind, () => idle.arm(), { passive: true });
}

/** Shows or hides a dialog over the kiosk: what is behind it cannot be
 * reached, by touch or by keyboard, and the focus comes back after. */
let focusBefore = null;
function overlay(selector, on, focus = `${selector} h2`) {
  const dialog = $(selector);
  if (dialog.hidden === !on) return;
  dialog.hidden = !on;
  const anyOpen = !$('#idle').hidden || !$('#offline').hidden;
  $('header').inert = anyOpen;
  $('main').inert = anyOpen;
  $('#error').inert = anyOpen;
  if (on) {
    focusBefore = focusBefore || document.activeElement;
    $(focus).focus();
  } else if (!anyOpen && focusBefore) {
    focusBefore.focus();
    focusBefore = null;
  }
}

/** Starts over for the next customer: nothing of this one stays on the
 * screen, and whatever was still on its way for them is dropped. */
function reset() {
  if (state) {
    state.poll?.stop();
    clearInterval(state.countdown);
    clearTimeout(state.expiry);
    const qr = $('#qr');
    if (qr.src.startsWith('blob:')) URL.revokeObjectURL(qr.src);
  }
  state = fresh();
  $('#qr').hidden = true;
  $('#qr').removeAttribute('src');
  $('#countdown').textContent = '';
  for (const field of ['#cpf', '#register-name', '#register-email']) {
    $(field).value = '';
    $(field).removeAttribute('aria-invalid');
  }
  for (const error of ['#cpf-error', '#register-name-error', '#register-email-error', '#register-cpf-error']) {
    $(error).textContent = '';
  }
  $('#cpf-submit').disabled = true;
  $('#register-form').hidden = true;
  overlay('#offline', false);
  overlay('#idle', false);
  show('start');
}

/** A call whose failure to reach the system shows the offline screen and
 * is tried again until it gets through; Abandoned once the kiosk started
 * over for someone else. */
async function steady(path, options) {
  const mine = state;
  for (let wait = 1000; ; wait = Math.min(wait * 2, 10_000)) {
    if (state !== mine) throw new Abandoned();
    try {
      const answer = await call(path, options);
      if (state !== mine) throw new Abandoned();
      overlay('#offline', false);
      return answer;
    } catch (e) {
      if (e instanceof Abandoned) throw e;
      if (!(e instanceof Offline)) {
        overlay('#offline', false);
        throw e;
      }
      overlay('#offline', true);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function fail(e) {
  if (e instanceof Abandoned) return;
  $('#error').textContent = explain(e);
}

// --- Menu and cart ---------------------------------------------------------

async function loadMenu() {
  const categories = (await steady('/categories')).data;
  const products = [];
  for (let page = 1; ; page++) {
    const { data } = await steady(`/products?per_page=100&page=${page}`);
    products.push(...data.items);
    if (products.length >= data.total || data.items.length === 0) break;
  }
  state.categories = categories.map((c) => c.name);
  state.products = products.filter((p) => p.active);
  if (!state.categories.includes(state.category)) state.category = state.categories[0];
  // What the menu no longer offers leaves the cart; the rest takes the
  // menu's current name and price.
  for (const [id, line] of state.cart) {
    const now = state.products.find((p) => p.id === id);
    if (now) line.product = now;
    else state.cart.delete(id);
  }
  renderMenu();
  renderCart();
}

function renderMenu() {
  keepingFocus(drawMenu);
}

function drawMenu() {
  $('#categories').replaceChildren(...state.categories.map((name, i) => el('button', {
    type: 'button',
    id: `category-${i}`,
    'aria-pressed': String(name === state.category),
    onclick: () => { state.category = name; renderMenu(); },
    text: name,
  })));
  const shown = state.products.filter((p) => p.category === state.category);
  $('#products').replaceChildren(...(shown.length ? shown.map((p) => el('li', { class: 'product' },
    el('h3', { text: p.name }),
    el('p', { text: p.description }),
    el('span', { class: 'price', text: money(p.price_cents) }),
    el('button', {
      type: 'button',
      id: `add-${p.id}`,
      'aria-label': `Adicionar ${p.name}`,
      onclick: () => add(p),
      text: 'Adicionar',
    }),
  )) : [el('li', { text: 'Nada nesta categoria agora.' })]));
}

function add(product) {
  const line = state.cart.get(product.id) || { product, quantity: 0, note: '' };
  line.quantity = Math.min(line.quantity + 1, 20);
  state.cart.set(product.id, line);
  renderCart();
}

function total() {
  let cents = 0;
  for (const line of state.cart.values()) cents += line.product.price_cents * line.quantity;
  return cents;
}

function renderCart() {
  keepingFocus(drawCart);
}

function drawCart() {
  const lines = [...state.cart.values()];
  $('#cart-empty').hidden = lines.length > 0;
  $('#cart-items').replaceChildren(...lines.map((line) => {
    const name = line.product.name;
    const setQuantity = (q) => {
      if (q <= 0) state.cart.delete(line.product.id);
      else line.quantity = Math.min(q, 20);
      renderCart();
    };
    const id = line.product.id;
    const noteId = `note-${id}`;
    return el('li', {},
      el('strong', { text: name }),
      el('div', { class: 'qty' },
        el('button', { type: 'button', id: `less-${id}`, class: 'secondary', 'aria-label': `Menos ${name}`, onclick: () => setQuantity(line.quantity - 1), text: '−' }),
        el('output', { 'aria-label': `Quantidade de ${name}`, text: line.quantity }),
        el('button', { type: 'button', id: `more-${id}`, class: 'secondary', 'aria-label': `Mais ${name}`, onclick: () => setQuantity(line.quantity + 1), text: '+' }),
        el('span', { text: money(line.product.price_cents * line.quantity) }),
      ),
      el('label', { for: noteId, text: `Observação (${name})` }),
      el('input', {
        id: noteId, maxlength: 140, value: line.note, placeholder: 'ex.: sem cebola',
        oninput: (e) => { line.note = e.target.value; },
      }),
    );
  }));
  $('#cart-total').textContent = lines.length ? `Total: ${money(total())}` : '';
  $('#to-identify').disabled = lines.length === 0;
}

// --- Who is ordering -------------------------------------------------------

function onCpfInput() {
  const input = $('#cpf');
  input.value = cpf.format(input.value);
  const complete = cpf.digits(input.value).length === 11;
  const ok = cpf.valid(input.value);
  $('#cpf-submit').disabled = !ok;
  input.setAttribute('aria-invalid', String(complete && !ok));
  $('#cpf-error').textContent = complete && !ok ? 'CPF inválido: confira os números.' : '';
}

async function withToken(promise, who) {
  const { data } = await promise;
  state.token = data.access_token;
  state.who = who;
  toConfirm();
}

async function byCpf(event) {
  event.preventDefault();
  const value = $('#cpf').value;
  // Never sent unless its check digits are right.
  if (!cpf.valid(value)) return onCpfInput();
  try {
    await withToken(steady('/auth/token', { method: 'POST', body: { cpf: cpf.digits(value) } }), 'identified');
  } catch (e) {
    if (e instanceof Abandoned) return;
    if (e instanceof Problem && e.status === 404) {
      $('#register-form').hidden = false;
      $('#register-name').focus();
    } else if (e instanceof Problem && e.status === 429) {
      $('#cpf-error').textContent = 'Muitas tentativas. Aguarde um pouco ou continue sem CPF.';
    } else {
      $('#cpf-error').textContent = explain(e);
    }
  }
}

async function register(event) {
  event.preventDefault();
  for (const f of ['name', 'email', 'cpf']) $(`#register-${f}-error`).textContent = '';
  const body = { name: $('#register-name').value, email: $('#register-email').value, cpf: cpf.digits($('#cpf').value) };
  try {
    await steady('/users', { method: 'POST', body });
  } catch (e) {
    if (e instanceof Abandoned) return;
    const knownCpf = e instanceof Problem && e.status === 409 && /cpf/i.test(e.message);
    if (e instanceof Problem && e.status === 409 && !knownCpf) {
      $('#register-email-error').textContent = 'Este e-mail já está cadastrado com outro CPF.';
      $('#register-email').setAttribute('aria-invalid', 'true');
      $('#register-email').focus();
      return;
    }
    if (!knownCpf) {
      if (e.errors?.length) {
        for (const { field, message } of e.errors) {
          const target = $(`#register-${field}-error`);
          if (target) target.textContent = message;
          $(`#register-${field}`)?.setAttribute('aria-invalid', 'true');
        }
      } else {
        $('#register-cpf-error').textContent = explain(e);
      }
      return;
    }
  }
  try {
    await withToken(steady('/auth/token', { method: 'POST', body: { cpf: body.cpf } }), 'identified');
  } catch (e) {
    if (!(e instanceof Abandoned)) $('#register-cpf-error').textContent = explain(e);
  }
}

async function asGuest() {
  try {
    await withToken(steady('/auth/guest', { method: 'POST' }), 'guest');
  } catch (e) {
    fail(e);
  }
}

// --- Confirm, pay, and the result ------------------------------------------

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function toConfirm() {
  // One key per attempt: a retry after a lost answer gets the same order.
  state.attempt = randomKey();
  $('#confirm-items').replaceChildren(...[...state.cart.values()].map((l) => el('li', {},
    `${l.quantity}× ${l.product.name} — ${money(l.product.price_cents * l.quantity)}`,
    l.note ? el('span', { class: 'hint', text: ` (obs.: ${l.note})` }) : null,
  )));
  $('#confirm-total').textContent = `Total: ${money(total())}`;
  $('#confirm-who').textContent = state.who === 'guest' ? 'Pedido sem identificação.' : 'Pedido identificado pelo seu CPF.';
  show('confirm');
}

async function place() {
  const button = $('#place');
  button.disabled = true;
  try {
    const items = [...state.cart.values()].map((l) => ({
      product_id: l.product.id, quantity: l.quantity, note: l.note.trim() || null,
    }));
    const { data } = await steady('/orders', {
      method: 'POST', token: state.token, idempotencyKey: state.attempt,
      body: POINT_OF_SALE ? { items, point_of_sale: POINT_OF_SALE } : { items },
    });
    state.order = data;
    $('#pay-total').textContent = `Total: ${money(data.total_cents)}`;
    $('#pay-waiting').textContent = 'Gerando o QR code…';
    show('pay');
    state.poll = watch();
  } catch (e) {
    if (e instanceof Abandoned) return;
    if (e instanceof Problem && e.status === 401) {
      show('identify');
      $('#cpf-error').textContent = 'Sua identificação expirou: identifique-se de novo.';
    } else if (e instanceof Problem && e.status === 422) {
      // A product left the menu meanwhile: show the menu as it is now.
      await loadMenu().catch(fail);
      show('menu');
      $('#error').textContent = 'Um item do seu pedido acabou de sair do cardápio: confira o pedido.';
    } else {
      fail(e);
    }
  } finally {
    button.disabled = false;
  }
}

/** Follows the order until it is paid or ends unpaid. */
function watch() {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      const { data } = await steady(`/orders/${state.order.id}`, { token: state.token });
      if (stopped) return;
      if (PAID.has(data.status)) return paid(data);
      if (data.status === 'CANCELLED') return ended(data);
      if (data.payment && !state.drawn) await drawQr(data).catch(fail);
    } catch (e) {
      if (e instanceof Abandoned) return;
      fail(e);
    }
    setTimeout(tick, POLL_MS);
  };
  tick();
  return { stop() { stopped = true; } };
}

async function drawQr(order) {
  const { payment } = order;
  const { data } = await steady(`/orders/${order.id}/qr.svg`, { token: state.token });
  const img = $('#qr');
  img.src = URL.createObjectURL(new Blob([data], { type: 'image/svg+xml' }));
  img.hidden = false;
  state.drawn = true;
  $('#pay-waiting').textContent = 'Aguardando o pagamento…';
  if (payment.expires_at) {
    const expires = Date.parse(payment.expires_at);
    const tick = () => {
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      const text = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
      $('#countdown').textContent = left > 0 ? `O QR code expira em ${text}` : 'O QR code expirou.';
      $('#countdown').setAttribute('aria-label', left > 0 ? `Expira em ${Math.ceil(left / 60)} minutos` : 'Expirou');
    };
    tick();
    state.countdown = setInterval(tick, 1000);
    // Should the saga never say how it ended, the kiosk does not stay
    // stuck on a dead code.
    state.expiry = setTimeout(reset, Math.max(expires - Date.now(), 0) + PAST_EXPIRY_MS);
  }
}

function paid(order) {
  clearInterval(state.countdown);
  clearTimeout(state.expiry);
  $('#order-number').textContent = String(order.number);
  show('paid');
}

/** Why an order ended unpaid, from the cause the saga wrote. */
const ENDINGS = [
  ['payment rejected', 'Pagamento recusado', 'O pagamento não foi aprovado. Nenhum valor foi cobrado. Você pode tentar de novo com outro meio.'],
  ['payment expired', 'Tempo para pagar esgotado', 'O QR code expirou antes do pagamento. Nada foi cobrado.'],
  ['payment could not be started', 'Não foi possível gerar o pagamento', 'O sistema de pagamento não respondeu. Nada foi cobrado. Tente de novo em instantes.'],
];

function ended(order) {
  clearInterval(state.countdown);
  clearTimeout(state.expiry);
  const cause = order.history.at(-1)?.cause || '';
  const [, title, text] = ENDINGS.find(([prefix]) => cause.startsWith(prefix))
    || [null, 'Pedido cancelado', 'O pedido foi cancelado. Nada foi cobrado.'];
  $('#ended-title').textContent = title;
  $('#ended-text').textContent = text;
  show('ended');
}

async function retry() {
  state.poll?.stop();
  state.drawn = false;
  $('#qr').hidden = true;
  $('#countdown').textContent = '';
  $('#pay-waiting').textContent = 'Gerando o QR code…';
  await loadMenu().catch(fail);
  if (state.cart.size === 0) show('menu');
  else toConfirm();
}

// --- Wiring ------------------------------------------------------------------

$('#begin').addEventListener('click', async () => {
  show('menu');
  await loadMenu().catch(fail);
});
$('#to-identify').addEventListener('click', () => show('identify'));
$('#identify-back').addEventListener('click', () => show('menu'));
$('#cpf').addEventListener('input', onCpfInput);
$('#cpf-form').addEventListener('submit', byCpf);
$('#register-form').addEventListener('submit', register);
$('#guest').addEventListener('click', asGuest);
$('#register-guest').addEventListener('click', asGuest);
$('#confirm-back').addEventListener('click', () => show('menu'));
$('#place').addEventListener('click', place);
$('#paid-done').addEventListener('click', reset);
$('#ended-done').addEventListener('click', reset);
$('#retry').addEventListener('click', retry);
$('#restart').addEventListener('click', reset);
$('#idle-stay').addEventListener('click', () => idle.arm());
reset();
