-- Every primary-key, unique, foreign-key, check and exclusion constraint of the tables in
-- schema_columns.sql (NOT NULL is a column property there, also on PostgreSQL 18).
-- Output columns: schema_name text, table_name text, constraint_name text,
--   kind text ('p', 'u', 'f', 'c', 'x'), definition text, validated bool
-- Oldest PostgreSQL: 9.6
SELECT n.nspname::text AS schema_name,
       t.relname::text AS table_name,
       k.conname::text AS constraint_name,
       k.contype::text AS kind,
       pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE k.contype IN ('p', 'u', 'f', 'c', 'x')
  AND t.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend e
      WHERE e.classid = 'pg_class'::regclass AND e.objid = t.oid AND e.deptype = 'e')
