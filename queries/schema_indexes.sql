-- Every index of a user table, as the parts its definition is made of: medmig assembles
-- `CREATE INDEX …` from them exactly as pg_get_indexdef prints it (the table's and the key
-- columns' names come from schema_columns.sql, operator class and collation names from
-- schema_names.sql), and keeps the indexes of the tables schema_columns.sql lists.
-- Calling pg_get_indexdef on every index would cost several times this whole query at
-- Medplum's 3,500 indexes; only expression columns and predicates are deparsed, and the
-- whole definition only for the rare index the parts cannot describe (storage parameters,
-- NULLS NOT DISTINCT, an expression whose collation is not the default).
-- Deparsing opens the table (ACCESS SHARE), which queues behind a migration's ALTER TABLE,
-- so it runs only for tables no ACCESS EXCLUSIVE lock is granted or queued on; elsewhere
-- `expressions`, `predicate` and `full_definition` are null and medmig keeps a lock-free
-- shape.
-- Rows come in no particular order. Only tables of user objects are read (oid 16384 and up,
-- PostgreSQL's FirstNormalObjectId; system catalogs are below), and no TOAST indexes.
-- Parameters: $1 the tables a migration holds or awaits an ACCESS EXCLUSIVE lock on (from
--   probe.sql), which are not to be opened
-- Output columns: index_oid oid, table_oid oid, index_name text, quoted_index text,
--   on_partitioned bool (a partitioned table's own index: ON ONLY), method text,
--   key_count int4, keys int2[], opclasses oid[], options int2[], collations oid[],
--   expressions text[] (one per expression column, in order), predicate text,
--   needs_full_definition bool, full_definition text, is_partial bool, is_unique bool,
--   is_primary bool, is_valid bool, is_ready bool
-- Oldest PostgreSQL: 11 (indnkeyatts); NULLS NOT DISTINCT (15) is read through to_jsonb so
--   that the query runs on older servers too.
SELECT x.indexrelid AS index_oid,
       x.indrelid AS table_oid,
       i.relname::text AS index_name,
       quote_ident(i.relname) AS quoted_index,
       i.relkind = 'I' AS on_partitioned,
       am.amname::text AS method,
       x.indnkeyatts::int4 AS key_count,
       x.indkey::int2[] AS keys,
       x.indclass::oid[] AS opclasses,
       x.indoption::int2[] AS options,
       x.indcollation::oid[] AS collations,
       CASE WHEN x.indexprs IS NULL OR locked.relation IS NOT NULL THEN NULL
            -- One expression that is a plain function call (Medplum's token_array_to_text):
            -- pg_get_expr prints it as pg_get_indexdef does, for less. The node tree's text
            -- tells: its top node and, first in it, the call's form (0 a call, 3 SQL syntax).
            WHEN cardinality(array_positions(x.indkey::int2[], 0::int2)) = 1
                 AND left(x.indexprs::text, 12) = '({FUNCEXPR :'
                 AND substr(x.indexprs::text, position(':funcformat ' IN x.indexprs::text) + 12, 1)
                     IN ('0', '3') THEN
                ARRAY[pg_get_expr(x.indexprs, x.indrelid)]
            ELSE ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, false)
                       FROM generate_series(1, x.indnkeyatts) k
                       WHERE x.indkey[k - 1] = 0
                       ORDER BY k)
       END AS expressions,
       CASE WHEN x.indpred IS NOT NULL AND locked.relation IS NULL THEN
           pg_get_expr(x.indpred, x.indrelid)
       END AS predicate,
       full_definition.needed AS needs_full_definition,
       CASE WHEN full_definition.needed AND locked.relation IS NULL THEN
           pg_get_indexdef(x.indexrelid)
       END AS full_definition,
       x.indpred IS NOT NULL AS is_partial,
       x.indisunique AS is_unique,
       x.indisprimary AS is_primary,
       x.indisvalid AS is_valid,
       x.indisready AS is_ready
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN unnest($1::oid[]) AS locked(relation) ON locked.relation = x.indrelid
-- An index the parts cannot describe: storage parameters, NULLS NOT DISTINCT (through to_jsonb,
-- so that the query runs before PostgreSQL 15 too), or an expression index with a collation
-- other than the default (the catalog does not say whether it is the expression's own).
CROSS JOIN LATERAL (
    SELECT i.reloptions IS NOT NULL
           OR (x.indisunique AND NOT x.indisprimary
               AND (to_jsonb(x) ->> 'indnullsnotdistinct')::bool)
           OR (x.indexprs IS NOT NULL AND NOT x.indcollation::oid[] <@ '{0,100}'::oid[])
           AS needed
) full_definition
WHERE x.indrelid >= 16384
  AND i.relnamespace <> 'pg_toast'::regnamespace
