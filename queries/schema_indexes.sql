-- Every index of the tables in schema_columns.sql, as the parts its definition is made of:
-- medmig assembles `CREATE INDEX …` from them exactly as pg_get_indexdef prints it (the key
-- columns' names come from schema_columns.sql, operator class and collation names from
-- schema_names.sql). Assembling it here, or calling pg_get_indexdef on every index, costs
-- most of a snapshot at Medplum's 3,500 indexes; only expression columns and predicates are
-- deparsed. Deparsing opens the table (ACCESS SHARE), which queues behind a migration's
-- ALTER TABLE, so it runs only for tables no ACCESS EXCLUSIVE lock is granted or queued on;
-- elsewhere `expressions` and `predicate` are null and medmig keeps a lock-free shape.
-- Output columns: schema_name text, table_name text, index_name text, quoted_schema text,
--   quoted_table text, quoted_index text, method text, key_count int4, keys int2[],
--   opclasses int8[], options int2[], collations int8[], expressions text[] (one per
--   expression column, in order), predicate text, full_definition text (only for an
--   expression whose collation is not the default, which the catalog cannot tell),
--   is_partial bool, is_unique bool, is_primary bool, is_valid bool, is_ready bool
-- Oldest PostgreSQL: 11 (indnkeyatts)
WITH locked AS MATERIALIZED (
    SELECT DISTINCT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
)
SELECT n.nspname::text AS schema_name,
       t.relname::text AS table_name,
       i.relname::text AS index_name,
       quote_ident(n.nspname) AS quoted_schema,
       quote_ident(t.relname) AS quoted_table,
       quote_ident(i.relname) AS quoted_index,
       am.amname::text AS method,
       x.indnkeyatts::int4 AS key_count,
       x.indkey::int2[] AS keys,
       x.indclass::oid[]::int8[] AS opclasses,
       x.indoption::int2[] AS options,
       x.indcollation::oid[]::int8[] AS collations,
       CASE WHEN x.indexprs IS NOT NULL AND locked.relation IS NULL THEN
           ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, false)
                 FROM generate_series(1, x.indnkeyatts) k
                 WHERE x.indkey[k - 1] = 0
                 ORDER BY k)
       END AS expressions,
       CASE WHEN x.indpred IS NOT NULL AND locked.relation IS NULL THEN
           pg_get_expr(x.indpred, x.indrelid)
       END AS predicate,
       CASE WHEN x.indexprs IS NOT NULL AND locked.relation IS NULL AND EXISTS (
               SELECT 1 FROM generate_series(1, x.indnkeyatts) k
               WHERE x.indkey[k - 1] = 0 AND x.indcollation[k - 1] NOT IN (0, 100)) THEN
           pg_get_indexdef(x.indexrelid)
       END AS full_definition,
       x.indpred IS NOT NULL AS is_partial,
       x.indisunique AS is_unique,
       x.indisprimary AS is_primary,
       x.indisvalid AS is_valid,
       x.indisready AS is_ready
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN locked ON locked.relation = x.indrelid
WHERE t.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND t.oid NOT IN (
      SELECT e.objid FROM pg_depend e
      WHERE e.classid = 'pg_class'::regclass AND e.deptype = 'e')
