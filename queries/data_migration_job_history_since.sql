-- `medmig wait`'s later polls: the versions of data_migration_job_history.sql written since a
-- moment, of the jobs written since then (a version is written with its job, so no other job
-- can have one). Uses "AsyncJob_History_lastUpdated_idx" and "AsyncJob_lastUpdated_idx".
-- Parameters: $1 job type ('data-migration'), $2 timestamptz (the window's start)
-- Output columns: job_id text, version_id text, last_updated timestamptz, status text (null
--   when not found), has_output bool
-- Oldest PostgreSQL: 9.6
SELECT h."id"::text AS job_id,
       h."versionId"::text AS version_id,
       h."lastUpdated" AS last_updated,
       substring(h."content" from '"status"\s*:\s*"([^"]*)"') AS status,
       strpos(h."content", '"output"') > 0 AS has_output
FROM "AsyncJob_History" h
WHERE h."lastUpdated" >= $2
  AND h."id" IN (
    SELECT j."id" FROM "AsyncJob" j
    WHERE j."lastUpdated" >= $2
      AND (j."type" = $1
           OR (j."type" IS NULL AND strpos(j."content", '/admin/super/') > 0))
)
ORDER BY h."id", h."lastUpdated", h."versionId"
