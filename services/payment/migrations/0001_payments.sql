-- One payment per order: its Mercado Pago QR order, the Mercado Pago
-- payment that settled it, and every status it went through.
CREATE TABLE payments (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL UNIQUE,
    -- The subject of the token that placed the order.
    customer_id text,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    status text NOT NULL CHECK (status IN
        ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'CANCELLED', 'REFUNDED', 'FAILED')),
    provider_order_id text,
    provider_payment_id text UNIQUE,
    qr_data text,
    expires_at timestamptz NOT NULL,
    qr_cancelled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_pending_by_expiry ON payments (expires_at) WHERE status = 'PENDING';

CREATE TABLE payment_history (
    id bigserial PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments (id),
    status text NOT NULL,
    cause text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_history_by_payment ON payment_history (payment_id, id);

-- Every signed notification, for the record; duplicates are recognised
-- by Mercado Pago's request id.
CREATE TABLE webhook_receipts (
    request_id text PRIMARY KEY,
    data_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    outcome text
);
