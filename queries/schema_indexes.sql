-- Every index of the tables in schema_columns.sql, its definition built from the catalog's
-- structured columns exactly as pg_get_indexdef prints it. Calling pg_get_indexdef on every
-- index costs about 60 µs each (most of a snapshot at Medplum's 3,500 indexes), so only the
-- parts that need it are deparsed: expression columns and predicates. Deparsing opens the
-- table (ACCESS SHARE), which queues behind a migration's ALTER TABLE, so it runs only for
-- tables no ACCESS EXCLUSIVE lock is granted or queued on; elsewhere `definition` is null and
-- `shape` (placeholders for expressions and predicates, no lock at all) stands in.
-- Output columns: schema_name text, table_name text, index_name text, definition text (null
--   when the table was locked), shape text, is_unique bool, is_primary bool, is_valid bool,
--   is_ready bool
-- One pass: the key columns of every index are unnested, looked up and aggregated per index
-- (a per-index subquery made the planner repeat its joins 3,500 times).
-- Oldest PostgreSQL: 11 (indnkeyatts)
WITH locked AS MATERIALIZED (
    SELECT DISTINCT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
),
wanted AS (
    SELECT x.indexrelid, x.indrelid, x.indnkeyatts, x.indkey, x.indclass, x.indoption,
           x.indcollation, x.indexprs IS NOT NULL AS has_expressions,
           x.indisunique, x.indisprimary, x.indisvalid, x.indisready,
           n.nspname, t.relname AS table_name, i.relname AS index_name, am.amname,
           locked.relation IS NOT NULL AS is_locked,
           CASE WHEN x.indpred IS NULL THEN ''
                WHEN locked.relation IS NULL THEN ' WHERE ' || pg_get_expr(x.indpred, x.indrelid)
           END AS predicate
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
)
SELECT w.nspname::text AS schema_name,
       w.table_name::text AS table_name,
       w.index_name::text AS index_name,
       CASE WHEN w.predicate IS NULL OR (w.is_locked AND w.has_expressions) THEN NULL
            -- An expression's collation is not in the catalog: such rare indexes are deparsed whole.
            WHEN bool_or(k.attnum = 0 AND k.collation_oid NOT IN (0, 100)) THEN pg_get_indexdef(w.indexrelid)
            ELSE 'CREATE ' || CASE WHEN w.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                 || quote_ident(w.index_name) || ' ON ' || quote_ident(w.nspname) || '.' || quote_ident(w.table_name)
                 || ' USING ' || w.amname || ' ('
                 || string_agg(
                        CASE WHEN k.attnum <> 0 THEN quote_ident(a.attname)
                             WHEN NOT w.is_locked THEN pg_get_indexdef(w.indexrelid, k.ord::int4, false)
                        END || suffix.text,
                        ', ' ORDER BY k.ord) FILTER (WHERE k.ord <= w.indnkeyatts)
                 || ')'
                 || coalesce(' INCLUDE (' || string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                                            FILTER (WHERE k.ord > w.indnkeyatts) || ')', '')
                 || w.predicate
       END AS definition,
       'CREATE ' || CASE WHEN w.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
         || quote_ident(w.index_name) || ' ON ' || quote_ident(w.nspname) || '.' || quote_ident(w.table_name)
         || ' USING ' || w.amname || ' ('
         || string_agg(
                CASE WHEN k.attnum = 0 THEN '(expression)' ELSE quote_ident(a.attname) END || suffix.text,
                ', ' ORDER BY k.ord) FILTER (WHERE k.ord <= w.indnkeyatts)
         || ')'
         || coalesce(' INCLUDE (' || string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                                    FILTER (WHERE k.ord > w.indnkeyatts) || ')', '')
         || CASE WHEN w.predicate = '' THEN '' ELSE ' WHERE (predicate)' END AS shape,
       w.indisunique AS is_unique,
       w.indisprimary AS is_primary,
       w.indisvalid AS is_valid,
       w.indisready AS is_ready
FROM wanted w
CROSS JOIN LATERAL unnest(w.indkey::int2[], w.indclass::oid[], w.indoption::int2[], w.indcollation::oid[])
    WITH ORDINALITY k(attnum, opclass, option, collation_oid, ord)
LEFT JOIN LATERAL (
    SELECT pa.attname, pa.attcollation FROM pg_attribute pa
    WHERE pa.attrelid = w.indrelid AND pa.attnum = k.attnum
) a ON true
LEFT JOIN pg_opclass opc ON opc.oid = k.opclass
LEFT JOIN pg_collation coll ON coll.oid = k.collation_oid
LEFT JOIN pg_namespace colln ON colln.oid = coll.collnamespace
CROSS JOIN LATERAL (
    -- Column [COLLATE c] [opclass] [DESC] [NULLS FIRST|LAST], as pg_get_indexdef prints it.
    SELECT CASE WHEN k.attnum = 0 OR coll.oid IS NULL OR coll.oid = a.attcollation THEN ''
                WHEN pg_collation_is_visible(coll.oid) THEN ' COLLATE ' || quote_ident(coll.collname)
                ELSE ' COLLATE ' || quote_ident(colln.nspname) || '.' || quote_ident(coll.collname) END
           || CASE WHEN opc.opcdefault OR opc.opcname IS NULL THEN '' ELSE ' ' || opc.opcname END
           || CASE WHEN k.option & 1 = 1 THEN ' DESC' ELSE '' END
           || CASE WHEN k.option & 2 = 2 AND k.option & 1 = 0 THEN ' NULLS FIRST'
                   WHEN k.option & 2 = 0 AND k.option & 1 = 1 THEN ' NULLS LAST'
                   ELSE '' END AS text
) suffix
GROUP BY w.indexrelid, w.nspname, w.table_name, w.index_name, w.amname, w.indisunique,
         w.indisprimary, w.indisvalid, w.indisready, w.is_locked, w.has_expressions, w.predicate
ORDER BY 1, 2, 3
