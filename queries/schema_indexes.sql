-- Every index of the tables in schema_columns.sql, without waiting on any lock.
-- pg_get_indexdef opens the table (ACCESS SHARE), which queues behind a migration's ALTER
-- TABLE, so it only runs for tables that no ACCESS EXCLUSIVE lock is granted or queued on;
-- `shape`, built from the catalog's structured columns with no lock at all, is always there
-- (expressions and predicates show as placeholders in it).
-- Output columns: schema_name text, table_name text, index_name text, definition text (null
--   when the table was locked), shape text, is_unique bool, is_primary bool, is_valid bool,
--   is_ready bool
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
       CASE WHEN locked.relation IS NULL THEN pg_get_indexdef(x.indexrelid) END AS definition,
       'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
         || quote_ident(i.relname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(t.relname)
         || ' USING ' || am.amname || ' (' || columns.key_list || ')'
         || coalesce(' INCLUDE (' || columns.include_list || ')', '')
         || CASE WHEN x.indpred IS NOT NULL THEN ' WHERE (predicate)' ELSE '' END AS shape,
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
CROSS JOIN LATERAL (
    SELECT string_agg(
               CASE WHEN k.attnum = 0 THEN '(expression)' ELSE quote_ident(a.attname) END
               || CASE WHEN opc.opcdefault THEN '' ELSE ' ' || opc.opcname END
               || CASE WHEN o.option & 1 = 1 THEN ' DESC' ELSE '' END
               || CASE WHEN o.option & 2 = 2 AND o.option & 1 = 0 THEN ' NULLS FIRST'
                       WHEN o.option & 2 = 0 AND o.option & 1 = 1 THEN ' NULLS LAST'
                       ELSE '' END,
               ', ' ORDER BY k.ord) FILTER (WHERE k.ord <= x.indnkeyatts) AS key_list,
           string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
               FILTER (WHERE k.ord > x.indnkeyatts) AS include_list
    FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
    LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
    LEFT JOIN unnest(x.indclass::oid[]) WITH ORDINALITY c(opclass, ord) ON c.ord = k.ord
    LEFT JOIN pg_opclass opc ON opc.oid = c.opclass
    LEFT JOIN unnest(x.indoption::int2[]) WITH ORDINALITY o(option, ord) ON o.ord = k.ord
) columns
WHERE t.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend e
      WHERE e.classid = 'pg_class'::regclass AND e.objid = t.oid AND e.deptype = 'e')
ORDER BY 1, 2, 3
