-- The catalog: four fixed categories and the products in them.
-- Money is integer cents; ids are UUIDv7 made by the service.

CREATE TABLE categories (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    position    integer NOT NULL
);

INSERT INTO categories (id, name, position) VALUES
    ('01936b2a-0000-7000-8000-000000000001', 'Lanche', 1),
    ('01936b2a-0000-7000-8000-000000000002', 'Acompanhamento', 2),
    ('01936b2a-0000-7000-8000-000000000003', 'Bebida', 3),
    ('01936b2a-0000-7000-8000-000000000004', 'Sobremesa', 4);

CREATE TABLE products (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    description          text NOT NULL DEFAULT '',
    category_id          uuid NOT NULL REFERENCES categories (id),
    price_cents          bigint NOT NULL CHECK (price_cents > 0),
    image_url            text,
    preparation_minutes  integer NOT NULL CHECK (preparation_minutes >= 0),
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_name_key UNIQUE (name)
);

CREATE INDEX products_active_category ON products (category_id, name) WHERE active;
