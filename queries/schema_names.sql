-- The names index definitions print beside a column, as pg_get_indexdef prints them: operator
-- classes that are not their type's default (a default one is not printed), and the default
-- collation (schema_indexes.sql names the others, on the few indexes that use them); each
-- quoted as needed and qualified with its schema when that is not on the search path.
-- Output columns: kind text ('opclass' or 'collation'), oid oid, name text
-- Oldest PostgreSQL: 9.6
SELECT 'opclass' AS kind, c.oid,
       CASE WHEN pg_opclass_is_visible(c.oid) THEN quote_ident(c.opcname)
            ELSE quote_ident(n.nspname) || '.' || quote_ident(c.opcname) END AS name
FROM pg_opclass c
JOIN pg_namespace n ON n.oid = c.opcnamespace
WHERE NOT c.opcdefault
UNION ALL
SELECT 'collation', c.oid,
       CASE WHEN pg_collation_is_visible(c.oid) THEN quote_ident(c.collname)
            ELSE quote_ident(n.nspname) || '.' || quote_ident(c.collname) END
FROM pg_collation c
JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE c.oid = 100
