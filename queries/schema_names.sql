-- The names index definitions print beside a column, as pg_get_indexdef prints them: operator
-- classes that are not their type's default (a default one is not printed), and collations
-- that indexes use; each quoted as needed and qualified with its schema when that is not on
-- the search path.
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
-- (the default collation, and those of the few indexes with another: unnesting every index's
-- collations costs more than the containment test that skips most)
WHERE c.oid = 100
   OR c.oid IN (SELECT DISTINCT unnest(x.indcollation::oid[]) FROM pg_index x
                WHERE NOT x.indcollation::oid[] <@ '{0,100}'::oid[])
