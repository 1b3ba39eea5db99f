-- Every stored version of the jobs above: when each was written and the status it had, for
-- the timeline of a run. Only the top-level status is taken out of the text (a regular
-- expression, because a version whose JSON is malformed must not fail the query; Medplum
-- writes "status" before "output"), so years of progress updates stay small on the wire.
-- Parameters: $1 job type ('data-migration')
-- Output columns: job_id text, version_id text, last_updated timestamptz, status text (null
--   when not found), has_output bool
-- Oldest PostgreSQL: 9.6
SELECT h."id"::text AS job_id,
       h."versionId"::text AS version_id,
       h."lastUpdated" AS last_updated,
       substring(h."content" from '"status"\s*:\s*"([^"]*)"') AS status,
       strpos(h."content", '"output"') > 0 AS has_output
FROM "AsyncJob_History" h
WHERE h."id" IN (
    SELECT j."id" FROM "AsyncJob" j
    WHERE (j."type" = $1
           OR (j."type" IS NULL AND strpos(j."content", '/admin/super/') > 0))
      AND NOT j."deleted"
)
ORDER BY h."id", h."lastUpdated", h."versionId"
