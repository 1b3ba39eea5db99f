-- The size of this database.
-- Output columns: rows jsonb (array of one {database, bytes})
-- Oldest PostgreSQL: 9.6
SELECT jsonb_build_array(jsonb_build_object(
           'database', current_database(),
           'bytes', pg_database_size(current_database()))) AS rows
