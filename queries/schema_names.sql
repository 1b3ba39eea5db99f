-- The names index definitions print beside a column: operator classes that are not their
-- type's default (a default one is not printed), and collations that indexes use, qualified
-- with their schema when it is not on the search path, as pg_get_indexdef does.
-- Output columns: kind text ('opclass' or 'collation'), oid int8, name text
-- Oldest PostgreSQL: 9.6
SELECT 'opclass' AS kind, c.oid::int8 AS oid, c.opcname::text AS name
FROM pg_opclass c
WHERE NOT c.opcdefault
UNION ALL
SELECT 'collation', c.oid::int8,
       CASE WHEN pg_collation_is_visible(c.oid) THEN quote_ident(c.collname)
            ELSE quote_ident(n.nspname) || '.' || quote_ident(c.collname) END
FROM pg_collation c
JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE c.oid IN (SELECT DISTINCT unnest(x.indcollation::oid[]) FROM pg_index x)
