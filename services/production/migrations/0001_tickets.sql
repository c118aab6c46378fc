-- One kitchen ticket per paid order.
CREATE TABLE tickets (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL UNIQUE,
    order_number bigint NOT NULL,
    customer_name text NOT NULL,
    -- [{name, quantity, note}] as the order listed them.
    items jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('RECEIVED', 'IN_PREPARATION', 'READY', 'DELIVERED')),
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ready_at timestamptz,
    delivered_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_by_status ON tickets (status, created_at);
