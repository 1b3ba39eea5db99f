-- Every function and procedure outside the system schemas that no extension owns, with a
-- hash of what decides its behaviour (body, result, language, volatility, strictness,
-- security), so that a changed definition shows without shipping the body.
-- Rows come in no particular order: medmig keeps them in a map by schema and signature.
-- Output columns: schema_name text, signature text, result text, kind text, definition_hash text
-- Oldest PostgreSQL: 11 (prokind, sha256)
SELECT n.nspname::text AS schema_name,
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS signature,
       coalesce(pg_get_function_result(p.oid), '') AS result,
       p.prokind::text AS kind,
       encode(sha256(convert_to(concat_ws(E'\x1f', p.prosrc, coalesce(pg_get_function_result(p.oid), ''),
              l.lanname, p.provolatile::text, p.proisstrict::text, p.prosecdef::text), 'UTF8')), 'hex')
         AS definition_hash
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend e
      WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
