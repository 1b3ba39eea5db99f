-- The names index definitions print beside a column, as pg_get_indexdef prints them: operator
-- classes that are not their type's default (a default one is not printed), and the default
-- collation (schema_indexes.sql names the others, on the few indexes that use them); each
-- quoted as needed and qualified with its schema when that is not on the search path.
-- And how this server quotes a name (medmig quotes table, column and index names itself, as
-- quote_ident does, rather than call it 12,000 times): the keywords it quotes (all but the
-- unreserved ones) and whether it quotes every name (quote_all_identifiers).
-- Output columns: kind text ('opclass', 'collation', 'keyword' or 'quote_all'), oid oid
--   (0 for the last two), name text (for 'quote_all': 'on' or 'off')
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
UNION ALL
SELECT 'keyword', 0, k.word FROM pg_get_keywords() k WHERE k.catcode <> 'U'
UNION ALL
SELECT 'quote_all', 0, current_setting('quote_all_identifiers')
