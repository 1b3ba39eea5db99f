-- What the server is, whether Medplum's migration tables exist and may be read, and which
-- tables a migration holds or awaits an ACCESS EXCLUSIVE lock on: the catalog queries do not
-- open those (deparsing an expression opens its table, which would queue behind the lock),
-- and a migration table among them is not read (its evidence is recorded as missing).
-- Takes no lock: to_regclass and has_table_privilege only look at the catalogs.
-- Output columns: taken_at timestamptz, server_version text, server_version_num int4,
--   database text, user_name text, migration_table bool, migration_readable bool,
--   migration_locked bool, job_table bool, job_readable bool, job_locked bool,
--   history_table bool, history_readable bool, history_locked bool, locked_tables oid[]
-- Oldest PostgreSQL: 9.6
WITH locked AS (
    SELECT ARRAY(SELECT DISTINCT l.relation
                 FROM pg_locks l
                 WHERE l.locktype = 'relation'
                   AND l.mode = 'AccessExclusiveLock'
                   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
             AS tables
)
SELECT now() AS taken_at,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int4 AS server_version_num,
       current_database()::text AS database,
       current_user::text AS user_name,
       to_regclass('"DatabaseMigration"') IS NOT NULL AS migration_table,
       coalesce(has_table_privilege(to_regclass('"DatabaseMigration"'), 'SELECT'), false) AS migration_readable,
       coalesce(to_regclass('"DatabaseMigration"')::oid = ANY (locked.tables), false) AS migration_locked,
       to_regclass('"AsyncJob"') IS NOT NULL AS job_table,
       coalesce(has_table_privilege(to_regclass('"AsyncJob"'), 'SELECT'), false) AS job_readable,
       coalesce(to_regclass('"AsyncJob"')::oid = ANY (locked.tables), false) AS job_locked,
       to_regclass('"AsyncJob_History"') IS NOT NULL AS history_table,
       coalesce(has_table_privilege(to_regclass('"AsyncJob_History"'), 'SELECT'), false) AS history_readable,
       coalesce(to_regclass('"AsyncJob_History"')::oid = ANY (locked.tables), false) AS history_locked,
       locked.tables AS locked_tables
FROM locked
