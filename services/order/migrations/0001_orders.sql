-- Orders, their lines priced from the catalog when placed, and every
-- status change with its time and cause.
CREATE SEQUENCE order_number_seq;

CREATE TABLE orders (
    id uuid PRIMARY KEY,
    number bigint NOT NULL UNIQUE DEFAULT nextval('order_number_seq'),
    -- The token's subject: a customer id or a guest's id.
    customer_id text NOT NULL,
    customer_name text,
    status text NOT NULL CHECK (status IN
        ('AWAITING_PAYMENT', 'RECEIVED', 'IN_PREPARATION', 'READY', 'FINISHED', 'CANCELLED')),
    total_cents bigint NOT NULL CHECK (total_cents > 0),
    payment_id uuid,
    qr_data text,
    payment_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_status ON orders (status, created_at);
CREATE INDEX orders_by_customer ON orders (customer_id, created_at);

CREATE TABLE order_items (
    order_id uuid NOT NULL REFERENCES orders (id),
    position integer NOT NULL,
    product_id uuid NOT NULL,
    name text NOT NULL,
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents > 0),
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 20),
    note text,
    PRIMARY KEY (order_id, position)
);

CREATE TABLE order_status_history (
    id bigserial PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    status text NOT NULL,
    cause text NOT NULL,
    -- The event that caused it, if one did.
    event_id uuid,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_by_order ON order_status_history (order_id, id);

-- A retried POST /orders with the same Idempotency-Key gets the first answer.
CREATE TABLE idempotency_keys (
    customer_id text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status integer,
    body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, key)
);
