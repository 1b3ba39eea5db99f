-- Every ordinary and partitioned table and materialized view outside the system schemas and
-- not owned by an extension, with its columns (a table without columns gives one row with null column fields).
-- These tables are the schema contract's: the index and constraint queries return rows by
-- table oid, and medmig keeps those of the tables listed here.
-- Never waits on a lock: a default is deparsed without its table (defaults cannot refer to
-- columns); a generated column's expression needs the table open, so it is deparsed only
-- when no ACCESS EXCLUSIVE lock is granted or queued on it (else null).
-- Rows come in no particular order: medmig orders them (a server-side sort costs more).
-- Parameters: $1 the tables a migration holds or awaits an ACCESS EXCLUSIVE lock on (from
--   probe.sql), which are not to be opened
-- Output columns: table_oid oid, schema_name text, table_name text, column_name text,
--   collation oid, position int2, data_type text (as format_type prints it), not_null bool,
--   default_expr text, identity text ('a' always, 'd' by default, null), generated text
--   ('s' stored, 'v' virtual, null), not_null_validated bool (whether the column's NOT NULL
--   constraint is valid; null where it has none in pg_constraint, as before PostgreSQL 18),
--   relation_kind text ('r' table, 'p' partitioned table, 'm' materialized view)
-- Oldest PostgreSQL: 12 (attgenerated). PostgreSQL 18 keeps NOT NULL constraints in
--   pg_constraint (contype 'n', possibly NOT VALID; attnotnull is then still true) and adds
--   virtual generated columns ('v'); older servers have neither, and the query is the same.
SELECT c.oid AS table_oid,
       n.nspname::text AS schema_name,
       c.relname::text AS table_name,
       a.attname::text AS column_name,
       a.attcollation AS collation,
       a.attnum AS position,
       format_type(a.atttypid, a.atttypmod) AS data_type,
       a.attnotnull AS not_null,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, 0)
            WHEN locked.relation IS NULL THEN pg_get_expr(d.adbin, d.adrelid)
       END AS default_expr,
       nullif(a.attidentity::text, '') AS identity,
       nullif(a.attgenerated::text, '') AS generated,
       nn.convalidated AS not_null_validated,
       c.relkind::text AS relation_kind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_constraint nn ON nn.conrelid = c.oid AND nn.contype = 'n'
                          AND nn.conkey = ARRAY[a.attnum]
LEFT JOIN unnest($1::oid[]) AS locked(relation) ON locked.relation = c.oid
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend e
      WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
