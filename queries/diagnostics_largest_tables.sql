-- The 40 largest tables, estimated from pg_class (pg_total_relation_size would open, and so
-- lock, every table), with row estimates and vacuum statistics. No row is read.
-- Output columns: rows jsonb (array of {schema, table, table_bytes, index_bytes, toast_bytes,
--   rows_estimate, live_rows, dead_rows, last_vacuum, last_autovacuum, last_analyze,
--   last_autoanalyze})
-- Oldest PostgreSQL: 9.6
SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.table_bytes + q.index_bytes + q.toast_bytes DESC), '[]'::jsonb) AS rows
FROM (
    SELECT n.nspname AS schema,
           c.relname AS table,
           c.relpages::int8 * current_setting('block_size')::int8 AS table_bytes,
           coalesce((SELECT sum(i.relpages)::int8 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                     WHERE x.indrelid = c.oid), 0) * current_setting('block_size')::int8 AS index_bytes,
           coalesce(t.relpages, 0)::int8 * current_setting('block_size')::int8 AS toast_bytes,
           c.reltuples::int8 AS rows_estimate,
           s.n_live_tup AS live_rows,
           s.n_dead_tup AS dead_rows,
           s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%'
    ORDER BY c.relpages DESC
    LIMIT 40
) q
