-- The catalog's version: bumped, and announced on the channel
-- catalog_changed, by every statement that writes products or categories,
-- so each replica knows at once that its menu in memory is out of date.
-- The epoch tells this database's versions from another's (an ETag a
-- kiosk kept from a database made anew is never taken for current).
CREATE TABLE catalog_version (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch     uuid NOT NULL DEFAULT gen_random_uuid(),
    version   bigint NOT NULL DEFAULT 1
);
INSERT INTO catalog_version DEFAULT VALUES;

CREATE FUNCTION catalog_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    current bigint;
BEGIN
    UPDATE catalog_version SET version = version + 1 RETURNING version INTO current;
    PERFORM pg_notify('catalog_changed', current::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed();
CREATE TRIGGER categories_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed();
