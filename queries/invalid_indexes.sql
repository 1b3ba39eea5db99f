-- Indexes that are not valid: the trace an interrupted CREATE INDEX CONCURRENTLY leaves.
-- Output columns: schema_name text, table_name text, index_name text, definition text,
--   ready bool (false: the build stopped before its first phase finished)
-- Oldest PostgreSQL: 9.6
SELECT n.nspname::text AS schema_name,
       t.relname::text AS table_name,
       i.relname::text AS index_name,
       pg_get_indexdef(x.indexrelid) AS definition,
       x.indisready AS ready
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT x.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY 1, 2, 3
