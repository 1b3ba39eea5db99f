-- Installed extensions, in no particular order.
-- Output columns: name text, version text, schema_name text
-- Oldest PostgreSQL: 9.6
SELECT e.extname::text AS name, e.extversion AS version, n.nspname::text AS schema_name
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
