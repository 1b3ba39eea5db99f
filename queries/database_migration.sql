-- Every row of "DatabaseMigration" (normally one, id = 1) as JSON, so that databases without
-- the newer columns ("dataVersion", "firstBoot") read the same way.
-- Output columns: row jsonb
-- Oldest PostgreSQL: 9.5
SELECT to_jsonb(m) AS "row"
FROM "DatabaseMigration" m
ORDER BY m."id"
