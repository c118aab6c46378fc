-- Customers identify by CPF; after an LGPD anonymisation their personal
-- data is gone but the row (and so the id orders refer to) stays.
CREATE TABLE customers (
    id             uuid PRIMARY KEY,
    name           text,
    cpf            text,
    email          text,
    anonymized_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customers_cpf_key UNIQUE (cpf),
    CONSTRAINT customers_email_key UNIQUE (email)
);

CREATE TABLE employees (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('employee', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT employees_email_key UNIQUE (email)
);
