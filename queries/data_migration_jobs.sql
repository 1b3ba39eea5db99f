-- Every post-deploy migration job that is not deleted, with its whole resource as text: the
-- fields that matter exist only inside "content", and one malformed job must not fail the
-- query, so JSON is parsed by medmig, not here. Uses "AsyncJob_type_idx".
-- Parameters: $1 job type ('data-migration')
-- Output columns: id text, last_updated timestamptz, status text, content text
-- Oldest PostgreSQL: 9.6
SELECT j."id"::text AS id,
       j."lastUpdated" AS last_updated,
       j."status" AS status,
       j."content" AS content
FROM "AsyncJob" j
WHERE j."type" = $1
  AND NOT j."deleted"
ORDER BY j."lastUpdated", j."id"
