-- An erasure is made by staff who checked the customer's document; who
-- made it is kept. Tokens the customer held are refused from anonymized_at
-- on (the revocation list reads this index).
ALTER TABLE customers ADD COLUMN anonymized_by uuid;
CREATE INDEX customers_anonymized_at ON customers (anonymized_at)
    WHERE anonymized_at IS NOT NULL;
