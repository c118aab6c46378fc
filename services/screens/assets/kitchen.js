// The kitchen display: every ticket not yet delivered, oldest first, in its
// column, with the step that moves it on. It polls with If-None-Match, so
// an unchanged queue costs a 304: API Gateway's HTTP API cuts a connection
// after 30 s, which rules out holding one open for server-sent events.

import { $, Offline, Problem, age, call, el, every, explain, keepingFocus, staffSession } from './common.js';

const POLL_MS = 2_000;
/** How often the tickets' ages are redrawn when nothing else changed. */
const AGES_MS = 30_000;
const STEPS = {
  RECEIVED: { path: 'started', label: 'Iniciar preparo' },
  IN_PREPARATION: { path: 'completed', label: 'Marcar pronto' },
  READY: { path: 'delivered', label: 'Entregue' },
};
const SAID = { RECEIVED: 'recebido', IN_PREPARATION: 'em preparo', READY: 'pronto', DELIVERED: 'entregue' };

let session = null;
let poller = null;
let etag = null;
let tickets = [];
let drawn = 0;

function render() {
  drawn = Date.now();
  keepingFocus(() => {
    for (const status of Object.keys(STEPS)) {
      const mine = tickets.filter((t) => t.status === status);
      $(`#${status}`).replaceChildren(...(mine.length ? mine.map(ticket) : [el('li', { class: 'hint', text: 'Nenhum.' })]));
    }
  });
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
      id: `step-${t.id}`,
      class: t.status === 'READY' ? 'go' : null,
      'aria-label': `${step.label}: pedido ${t.order_number}`,
      onclick: (e) => advance(t, step, e.target),
      text: step.label,
    }),
  );
}

async function advance(t, step, button) {
  button.disabled = true;
  $('#error').textContent = '';
  try {
    await call(`/production/${t.id}/${step.path}`, { method: 'PUT', token: session.token });
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return session.end('Sua sessão expirou. Entre de novo.');
    $('#error').textContent = e instanceof Problem && e.status === 409
      ? await moved(t) : explain(e);
  }
  poller?.now();
}

/** What a 409 means here: another screen moved the ticket first. */
async function moved(t) {
  try {
    const { data } = await call(`/production/${t.id}`, { token: session.token });
    return `Pedido ${t.order_number} já está ${SAID[data.status] || data.status}: outra tela o moveu antes. A tela foi atualizada.`;
  } catch {
    return `Pedido ${t.order_number} mudou em outra tela. A tela foi atualizada.`;
  }
}

async function refresh() {
  if (!session || !session.token) return;
  try {
    const answer = await call('/production', { token: session.token, etag });
    if (answer.status !== 304) {
      tickets = answer.data;
      etag = answer.etag;
      render();
    } else if (Date.now() - drawn > AGES_MS) {
      render();
    }
    $('#updated').textContent = `Atualizado às ${new Date().toLocaleTimeString('pt-BR')}`;
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return session.end('Sua sessão expirou. Entre de novo.');
    if (e instanceof Problem && e.status === 403) return session.end('Esta conta não pode usar a cozinha.');
    $('#updated').textContent = e instanceof Offline ? 'Sem conexão: tentando de novo…' : explain(e);
    throw e;
  }
}

session = staffSession('kitchen-token', $('#kitchen'), {
  start(s) {
    session = s;
    etag = null;
    poller?.stop();
    poller = every(POLL_MS, refresh);
  },
  stop() {
    poller?.stop();
    poller = null;
  },
});
$('#logout').addEventListener('click', () => session.end());
