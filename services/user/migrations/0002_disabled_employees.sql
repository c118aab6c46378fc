-- An admin may disable an employee: no new token, and the tokens they hold
-- are refused by every service (tokens issued before tokens_not_before).
-- Enabling them again clears disabled_at; tokens_not_before stays.
ALTER TABLE employees
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN tokens_not_before timestamptz;
CREATE INDEX employees_tokens_not_before ON employees (tokens_not_before)
    WHERE tokens_not_before IS NOT NULL;
