-- Every post-deploy migration job that is not deleted, with its whole resource as text: the
-- fields that matter exist only inside "content", and one malformed job must not fail the
-- query, so JSON is parsed by medmig, not here. Also the jobs of the server's schema
-- maintenance endpoints (POST /admin/super/reconcile-db-schema-drift and kin), which have no
-- type and run on the post-deploy queue: they are shown apart, never as a migration. Uses
-- "AsyncJob_type_idx" (a btree index answers both the equality and IS NULL).
-- Parameters: $1 job type ('data-migration')
-- Output columns: id text, last_updated timestamptz, status text, project_id text (null for
--   a system job on older servers), content text
-- Oldest PostgreSQL: 9.6
SELECT j."id"::text AS id,
       j."lastUpdated" AS last_updated,
       j."status" AS status,
       j."projectId"::text AS project_id,
       j."content" AS content
FROM "AsyncJob" j
WHERE (j."type" = $1
       OR (j."type" IS NULL AND strpos(j."content", '/admin/super/') > 0))
  AND NOT j."deleted"
ORDER BY j."lastUpdated", j."id"
