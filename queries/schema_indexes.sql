-- Every index of the tables in schema_columns.sql.
-- Output columns: schema_name text, table_name text, index_name text, definition text,
--   is_unique bool, is_primary bool, is_valid bool
-- Oldest PostgreSQL: 9.6
SELECT n.nspname::text AS schema_name,
       t.relname::text AS table_name,
       i.relname::text AS index_name,
       pg_get_indexdef(x.indexrelid) AS definition,
       x.indisunique AS is_unique,
       x.indisprimary AS is_primary,
       x.indisvalid AS is_valid
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE t.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend e
      WHERE e.classid = 'pg_class'::regclass AND e.objid = t.oid AND e.deptype = 'e')
ORDER BY 1, 2, 3
