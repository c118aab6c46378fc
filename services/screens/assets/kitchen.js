// The kitchen display: every ticket not yet delivered, oldest first, in its
// column, with the step that moves it on. It polls with If-None-Match, so
// an unchanged queue costs a 304: API Gateway's HTTP API cuts a connection
// after 30 s, which rules out holding one open for server-sent events.

import { $, Offline, Problem, age, call, el, every, explain, staffSession } from './common.js';

const POLL_MS = 2_000;
const STEPS = {
  RECEIVED: { path: 'started', label: 'Iniciar preparo' },
  IN_PREPARATION: { path: 'completed', label: 'Marcar pronto' },
  READY: { path: 'delivered', label: 'Entregue' },
};

let etag = null;
let tickets = [];
let poller = null;

function render() {
  for (const status of Object.keys(STEPS)) {
    const mine = tickets.filter((t) => t.status === status);
    $(`#${status}`).replaceChildren(...(mine.length ? mine.map(ticket) : [el('li', { class: 'hint', text: 'Nenhum.' })]));
  }
}

function ticket(t) {
  const step = STEPS[t.status];
  const items = Array.isArray(t.items) ? t.items : [];
  return el('li', { class: 'ticket' },
    el('h3', {}, `#${t.order_number}`, el('span', { class: 'age', text: age(t.created_at) })),
    el('ul', {}, items.map((i) => el('li', {},
      `${i.quantity}× ${i.name}`,
      i.note ? el('div', { class: 'note', text: `obs.: ${i.note}` }) : null,
    ))),
    el('button', {
      type: 'button',
      class: t.status === 'READY' ? 'go' : '',
      'aria-label': `${step.label}: pedido ${t.order_number}`,
      onclick: (e) => advance(t, step, e.target),
      text: step.label,
    }),
  );
}

async function advance(t, step, button) {
  const session = current;
  button.disabled = true;
  $('#error').textContent = '';
  try {
    await call(`/production/${t.id}/${step.path}`, { method: 'PUT', token: session.token });
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return session.end('Sua sessão expirou. Entre de novo.');
    // A 409 says plainly what the ticket is now (another screen moved it).
    $('#error').textContent = e instanceof Problem && e.status === 409
      ? `Pedido ${t.order_number}: ${e.message}` : explain(e);
  }
  poller?.now();
}

let current = null;

async function refresh() {
  try {
    const answer = await call('/production', { token: current.token, etag });
    if (answer.status !== 304) {
      tickets = answer.data;
      etag = answer.etag;
    }
    render();
    $('#updated').textContent = `Atualizado às ${new Date().toLocaleTimeString('pt-BR')}`;
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return current.end('Sua sessão expirou. Entre de novo.');
    if (e instanceof Problem && e.status === 403) return current.end('Esta conta não pode usar a cozinha.');
    $('#updated').textContent = e instanceof Offline ? 'Sem conexão: tentando de novo…' : explain(e);
    throw e;
  }
}

current = staffSession('kitchen-token', $('#kitchen'), (session) => {
  current = session;
  etag = null;
  poller?.stop();
  poller = every(POLL_MS, refresh);
});
$('#logout').addEventListener('click', () => {
  poller?.stop();
  current.end();
});
