-- Every index of a user table, as the parts its definition is made of: medmig assembles
-- `CREATE INDEX …` from them exactly as pg_get_indexdef prints it (the table's and the key
-- columns' names come from schema_columns.sql, operator class names and the default
-- collation's from schema_names.sql), and keeps the indexes of the tables schema_columns.sql
-- lists.
-- Calling pg_get_indexdef on every index would cost several times this whole query at
-- Medplum's 3,500 indexes, and so would deparsing its 800 expressions and predicates, which
-- opens their 150 tables. Medplum's two shapes are printed by medmig from their node trees
-- (src/nodetree.rs), with no table opened:
--   * a call of a user function on plain columns, `token_array_to_text("__codeText")`: the
--     function's name is given as pg_get_expr prints it (bare when the bare name finds it,
--     else qualified; a visible name that is overloaded is left to the server);
--   * a boolean column compared with a boolean constant, `(deleted = false)`, while `=` on
--     booleans is PostgreSQL's only one.
-- The tests on the text of the node trees are cheap ones (a regular expression over them
-- costs more than deparsing). Other expressions and predicates are deparsed here, and the
-- whole definition only for the rare index the parts cannot describe (storage parameters,
-- NULLS NOT DISTINCT, operator class parameters, an expression whose collation or whose
-- index column's collation is not the default).
-- Deparsing opens the table (ACCESS SHARE), which queues behind a migration's ALTER TABLE,
-- so it runs only for tables no ACCESS EXCLUSIVE lock is granted or queued on; elsewhere
-- `expressions`, `predicate` and `full_definition` are null and medmig keeps a lock-free
-- shape.
-- Rows come in no particular order. Only tables of user objects are read (oid 16384 and up,
-- PostgreSQL's FirstNormalObjectId; system catalogs are below), and no TOAST indexes.
-- Parameters: $1 the tables a migration holds or awaits an ACCESS EXCLUSIVE lock on (from
--   probe.sql), which are not to be opened
-- Output columns: index_oid oid, table_oid oid, index_name text,
--   on_partitioned bool (a partitioned table's own index: ON ONLY), method text,
--   key_count int4, keys int2[], opclasses oid[], options int2[], collations oid[],
--   collation_names text[] (of `collations`, when one is neither none nor the default),
--   call_name text and call_tree text (the one expression, a call medmig prints: the
--   function's printed name and the node tree), expressions text[] (otherwise: one per
--   expression column, in order), predicate_tree text (a predicate medmig prints: its node
--   tree), predicate text (otherwise), needs_full_definition bool, full_definition text,
--   is_partial bool, is_unique bool, is_primary bool, is_valid bool, is_ready bool,
--   parameterized int2[] (the index columns, numbered from 1, whose operator class has
--   parameters: `gist_trgm_ops (siglen='64')`; empty for most)
-- Oldest PostgreSQL: 11 (indnkeyatts, starts_with, prokind). Operator class parameters (13)
--   are in the index's pg_attribute.attoptions, null before. NULLS NOT DISTINCT (15) is read
--   through to_jsonb so that the query runs on older servers too, where it is false.
-- Every column is of the same type, and none is null but where said, on every major.
-- User functions an index expression may call (immutable, not variadic), with their names as
-- pg_get_expr prints them, or null when that depends on the arguments (an overloaded name).
-- Functions written in C come from extensions, by the hundred, and are left to the server.
WITH callable AS (
    SELECT p.oid,
           CASE WHEN to_regproc(quote_ident(p.proname)) = p.oid THEN quote_ident(p.proname)
                WHEN NOT pg_function_is_visible(p.oid) THEN
                    quote_ident(n.nspname) || '.' || quote_ident(p.proname)
           END AS name
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE p.oid >= 16384 AND p.prokind = 'f' AND p.provariadic = 0 AND p.provolatile = 'i'
      AND l.lanname NOT IN ('c', 'internal')
),
-- What the key columns of each index need that the parts cannot say, in one pass over the
-- index columns (tables' columns are not joined): operator class parameters (the index
-- column's attoptions), and an operator class that is a default but not for the type it
-- indexes here. pg_get_indexdef prints an operator class unless it is what the server would
-- pick for that type, a pick (binary-coercible types, domains, preferred types) that is the
-- server's to make: `bits varbit_ops` on a bit column, `vc text_ops` on a varchar column
-- under GIN. The index column's type is the type indexed unless the class stores another
-- (opckeytype): then it is unknown, and taken as another. A polymorphic class (array_ops on
-- text[], range_ops) is the one default for its types.
key_columns AS (
    SELECT ia.attrelid AS index_oid,
           array_agg(ia.attnum ORDER BY ia.attnum) FILTER (WHERE ia.attoptions IS NOT NULL)
               AS parameterized,
           bool_or(o.opcdefault AND t.typtype <> 'p'
                   AND (o.opckeytype <> 0 OR ia.atttypid <> o.opcintype))
               AS default_of_another_type
    FROM pg_index x
    JOIN pg_attribute ia ON ia.attrelid = x.indexrelid AND ia.attnum <= x.indnkeyatts
    JOIN pg_opclass o ON o.oid = x.indclass[ia.attnum - 1]
    JOIN pg_type t ON t.oid = o.opcintype
    WHERE x.indrelid >= 16384
    GROUP BY ia.attrelid
)
SELECT x.indexrelid AS index_oid,
       x.indrelid AS table_oid,
       i.relname::text AS index_name,
       i.relkind = 'I' AS on_partitioned,
       am.amname::text AS method,
       x.indnkeyatts::int4 AS key_count,
       x.indkey::int2[] AS keys,
       x.indclass::oid[] AS opclasses,
       x.indoption::int2[] AS options,
       x.indcollation::oid[] AS collations,
       -- The names of `collations` (null for none), for the few indexes that use one other
       -- than the default: schema_names.sql names only that one, as scanning every index's
       -- collations there costs more than naming these here.
       CASE WHEN NOT x.indcollation::oid[] <@ '{0,100}'::oid[] THEN
           ARRAY(SELECT CASE WHEN pg_collation_is_visible(c.oid) THEN quote_ident(c.collname)
                             ELSE quote_ident(n.nspname) || '.' || quote_ident(c.collname) END
                 FROM unnest(x.indcollation::oid[]) WITH ORDINALITY AS used(oid, position)
                 LEFT JOIN pg_collation c ON c.oid = used.oid
                 LEFT JOIN pg_namespace n ON n.oid = c.collnamespace
                 ORDER BY used.position)
       END AS collation_names,
       call.name AS call_name,
       CASE WHEN call.name IS NOT NULL THEN tree.expression END AS call_tree,
       CASE WHEN x.indexprs IS NULL OR call.name IS NOT NULL OR locked.relation IS NOT NULL THEN NULL
            -- One expression that is a plain function call: pg_get_expr prints it as
            -- pg_get_indexdef does, for less. The node tree's text tells: its top node and,
            -- first in it, the call's form (0 a call). A call in SQL syntax (3: AT TIME ZONE,
            -- OVERLAPS, IS NORMALIZED) is not: whether pg_get_indexdef parenthesizes it again
            -- changed within minor releases (15.18 does not, 15.20 does).
            WHEN cardinality(array_positions(x.indkey::int2[], 0::int2)) = 1
                 AND starts_with(tree.expression, '({FUNCEXPR :')
                 AND substr(tree.expression, position(':funcformat ' IN tree.expression) + 12, 1)
                     = '0' THEN
                ARRAY[pg_get_expr(x.indexprs, x.indrelid)]
            ELSE ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, false)
                       FROM generate_series(1, x.indnkeyatts) k
                       WHERE x.indkey[k - 1] = 0
                       ORDER BY k)
       END AS expressions,
       CASE WHEN printable.boolean_equality THEN tree.predicate END AS predicate_tree,
       CASE WHEN x.indpred IS NOT NULL AND printable.boolean_equality IS NOT TRUE
                 AND locked.relation IS NULL THEN
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
       x.indisready AS is_ready,
       coalesce(key_columns.parameterized, '{}'::int2[]) AS parameterized
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN unnest($1::oid[]) AS locked(relation) ON locked.relation = x.indrelid
LEFT JOIN key_columns ON key_columns.index_oid = x.indexrelid
CROSS JOIN LATERAL (
    SELECT x.indexprs::text AS expression, x.indpred::text AS predicate
) tree
-- Medplum's two shapes. A call on plain columns: the tree's first node is the call, in call
-- form, not variadic, and every other node is a column (no `{` but the call's and the
-- columns': so it is the index's one expression), none of them the whole row (attribute 0).
-- The function is then looked up in `callable`.
-- A boolean equality: three nodes, a column then a boolean constant that is not null.
CROSS JOIN LATERAL (
    SELECT CASE WHEN starts_with(tree.expression, '({FUNCEXPR :funcid ')
                 AND strpos(tree.expression, ' :funcvariadic false :funcformat 0 ') > 0
                 AND strpos(tree.expression, ':varattno 0 ') = 0
                 AND octet_length(tree.expression) - octet_length(replace(tree.expression, '{', ''))
                     = 1 + (octet_length(tree.expression)
                            - octet_length(replace(tree.expression, '{VAR ', ''))) / 5
                THEN split_part(substr(tree.expression, 20), ' ', 1)::oid
           END AS funcid,
           starts_with(tree.predicate, '{OPEXPR :opno 91 :')
             AND strpos(tree.predicate, ':constisnull false ') > 0
             AND strpos(tree.predicate, ':varattno 0 ') = 0
             AND strpos(tree.predicate, '{VAR ') > 0
             AND strpos(tree.predicate, '{VAR ') < strpos(tree.predicate, '{CONST :consttype 16 ')
             AND octet_length(tree.predicate) - octet_length(replace(tree.predicate, '{', '')) = 3
             AND (SELECT count(*) FROM pg_operator o
                  WHERE o.oprname = '=' AND o.oprleft = 16 AND o.oprright = 16) = 1
             AS boolean_equality
) printable
LEFT JOIN callable call ON call.oid = printable.funcid
-- An index the parts cannot describe: storage parameters, NULLS NOT DISTINCT (through to_jsonb,
-- null before PostgreSQL 15), operator class parameters, a default operator class of another
-- type (see key_columns), or an expression index where a
-- collation other than the default is in play: as the index column's (the catalog does not
-- say whether it is the expression's own) or anywhere in the expressions' node trees, whose
-- collation fields all end in `collid` or are `collOid`. An expression of the default
-- collation indexed with another, or the reverse, prints a COLLATE clause that only
-- pg_get_indexdef knows to print (`((c || 'x') COLLATE "default")` on a "C" column).
CROSS JOIN LATERAL (
    SELECT i.reloptions IS NOT NULL
           OR (x.indisunique AND NOT x.indisprimary
               AND coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::bool, false))
           OR key_columns.parameterized IS NOT NULL
           OR coalesce(key_columns.default_of_another_type, false)
           OR (x.indexprs IS NOT NULL
               AND (NOT x.indcollation::oid[] <@ '{0,100}'::oid[]
                    OR strpos(tree.expression, ':collOid ') > 0
                    OR (octet_length(tree.expression)
                        - octet_length(replace(tree.expression, 'collid ', ''))) / 7
                       <> (octet_length(tree.expression)
                           - octet_length(replace(tree.expression, 'collid 0 ', ''))) / 9
                          + (octet_length(tree.expression)
                             - octet_length(replace(tree.expression, 'collid 100 ', ''))) / 11))
           AS needed
) full_definition
WHERE x.indrelid >= 16384
  AND i.relnamespace <> 'pg_toast'::regnamespace
