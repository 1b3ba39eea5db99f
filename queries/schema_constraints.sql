-- Every primary-key, unique, foreign-key, check and exclusion constraint of a user table
-- (NOT NULL is a column property in schema_columns.sql, also on PostgreSQL 18); medmig keeps
-- those of the tables schema_columns.sql lists.
-- A plain primary key (btree, not deferrable, the one kind every table has) is not deparsed:
-- medmig assembles `PRIMARY KEY (…) INCLUDE (…)` from `keys` and its index, exactly as
-- pg_get_constraintdef prints it. Check and exclusion constraints are deparsed only where no
-- ACCESS EXCLUSIVE lock is granted or queued on the table (deparsing them opens it); elsewhere
-- `definition` is null.
-- Rows come in no particular order. Only user tables are read (oid 16384 and up).
-- Parameters: $1 the tables a migration holds or awaits an ACCESS EXCLUSIVE lock on (from
--   probe.sql), which are not to be opened
-- Output columns: table_oid oid, constraint_name text, kind text ('p', 'u', 'f', 'c', 'x'),
--   index_oid oid, keys int2[], definition text (pg_get_constraintdef, null when assembled
--   by medmig or not read), validated bool
-- Oldest PostgreSQL: 9.6
SELECT k.conrelid AS table_oid,
       k.conname::text AS constraint_name,
       k.contype::text AS kind,
       k.conindid AS index_oid,
       k.conkey AS keys,
       CASE WHEN k.contype = 'p' AND NOT k.condeferrable AND am.amname = 'btree' THEN NULL
            WHEN k.contype IN ('c', 'x') AND locked.relation IS NOT NULL THEN NULL
            ELSE pg_get_constraintdef(k.oid)
       END AS definition,
       k.convalidated AS validated
FROM pg_constraint k
LEFT JOIN pg_class i ON i.oid = k.conindid
LEFT JOIN pg_am am ON am.oid = i.relam
LEFT JOIN unnest($1::oid[]) AS locked(relation) ON locked.relation = k.conrelid
WHERE k.contype IN ('p', 'u', 'f', 'c', 'x')
  AND k.conrelid >= 16384
