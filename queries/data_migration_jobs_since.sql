-- `medmig wait`'s later polls: the jobs of data_migration_jobs.sql written since a moment,
-- and every job deleted since then whatever its type (flagged, without content: the server's
-- delete empties "content" and nulls the search columns, "type" and "status" included, so a
-- deleted job no longer has its type; `deleteResource` in packages/server/src/fhir/repo.ts,
-- which stamps "lastUpdated" with the server's clock), so that the jobs an earlier poll read
-- can be brought up to date without reading them all again. Rows read per poll are the jobs
-- written in the window, whatever the number of jobs. Uses "AsyncJob_lastUpdated_idx".
-- Parameters: $1 job type ('data-migration'), $2 timestamptz (the window's start)
-- Output columns: id text, last_updated timestamptz, status text, project_id text,
--   content text (null for a deleted job), deleted bool
-- Oldest PostgreSQL: 9.6
SELECT j."id"::text AS id,
       j."lastUpdated" AS last_updated,
       j."status" AS status,
       j."projectId"::text AS project_id,
       CASE WHEN j."deleted" THEN NULL ELSE j."content" END AS content,
       j."deleted" AS deleted
FROM "AsyncJob" j
WHERE j."lastUpdated" >= $2
  AND (j."deleted"
       OR j."type" = $1
       OR (j."type" IS NULL AND strpos(j."content", '/admin/super/') > 0))
ORDER BY j."lastUpdated", j."id"
