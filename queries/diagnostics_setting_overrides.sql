-- Settings overridden per role and per database (ALTER ROLE / ALTER DATABASE … SET).
-- Output columns: rows jsonb (array of {role, database, settings text[]})
-- Oldest PostgreSQL: 9.6
SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.role, q.database), '[]'::jsonb) AS rows
FROM (
    SELECT coalesce(r.rolname::text, '(every role)') AS role,
           coalesce(d.datname::text, '(every database)') AS database,
           s.setconfig AS settings
    FROM pg_db_role_setting s
    LEFT JOIN pg_roles r ON r.oid = s.setrole
    LEFT JOIN pg_database d ON d.oid = s.setdatabase
) q
