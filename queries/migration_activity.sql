-- Sessions of this database that are migrating right now: holders of Medplum's migration
-- advisory lock (key 1), sessions running migration DDL, and sessions running a write for
-- longer than a second (medmig decides later, against the server's statement limit, whether
-- only a client with statement_timeout raised could run that long: the post-deploy
-- migration client sets it to 0, packages/server/src/migrations/migration-utils.ts,
-- withLongRunningDatabaseClient). Sessions whose query text this role may not see (without
-- pg_read_all_stats) are returned too, flagged, so that the report can say how much it could
-- not see. At most 500 rows, the oldest statements first.
-- Parameters: $1 regular expression of migration statements (case-insensitive),
--   $2 regular expression of writes (case-insensitive)
-- Output columns: pid int4, application_name text, state text, query_start timestamptz,
--   query text (first 200 characters), holds_migration_lock bool, query_hidden bool,
--   runs_ddl bool
-- Oldest PostgreSQL: 10 (backend_type)
WITH lock_holders AS (
    SELECT DISTINCT l.pid
    FROM pg_locks l
    WHERE l.locktype = 'advisory'
      AND l.granted
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      AND l.classid = 0 AND l.objid = 1 AND l.objsubid = 1
)
SELECT a.pid AS pid,
       a.application_name AS application_name,
       a.state AS state,
       a.query_start AS query_start,
       left(a.query, 200) AS query,
       a.pid IN (SELECT pid FROM lock_holders) AS holds_migration_lock,
       coalesce(a.query = '<insufficient privilege>', true) AS query_hidden,
       coalesce(a.state <> 'idle' AND a.query ~* $1, false) AS runs_ddl
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
  AND a.datname = current_database()
  AND a.backend_type = 'client backend'
  AND (a.pid IN (SELECT pid FROM lock_holders)
       OR a.query IS NULL
       OR a.query = '<insufficient privilege>'
       OR (a.state <> 'idle' AND a.query ~* $1)
       OR (a.state = 'active' AND a.query_start < now() - interval '1 second' AND a.query ~* $2))
ORDER BY a.query_start NULLS LAST, a.pid
LIMIT 500
