-- The server settings that matter when a migration misbehaves, with where each comes from.
-- Parameters: $1 text[] setting names
-- Output columns: rows jsonb (array of {name, setting, unit, source, context, pending_restart})
-- Oldest PostgreSQL: 9.6
SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.name), '[]'::jsonb) AS rows
FROM (
    SELECT s.name, s.setting, s.unit, s.source, s.context, s.pending_restart
    FROM pg_settings s
    WHERE s.name = ANY ($1)
) q
