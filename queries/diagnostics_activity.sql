-- Every session of this database and the server's background processes: state, wait, ages
-- in seconds, who blocks whom, and the statement (medmig strips its literals before it goes
-- anywhere). Without pg_read_all_stats other roles' statements read '<insufficient privilege>'.
-- Output columns: rows jsonb (array of {pid, user, application, backend_type, client, state,
--   wait_event_type, wait_event, backend_age_s, transaction_age_s, query_age_s, state_age_s,
--   blocked_by int[], query})
-- Oldest PostgreSQL: 10 (backend_type)
SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.pid), '[]'::jsonb) AS rows
FROM (
    SELECT a.pid,
           a.usename::text AS user,
           a.application_name AS application,
           a.backend_type,
           a.client_addr::text AS client,
           a.state,
           a.wait_event_type,
           a.wait_event,
           round(extract(epoch FROM now() - a.backend_start)::numeric, 1) AS backend_age_s,
           round(extract(epoch FROM now() - a.xact_start)::numeric, 1) AS transaction_age_s,
           round(extract(epoch FROM now() - a.query_start)::numeric, 1) AS query_age_s,
           round(extract(epoch FROM now() - a.state_change)::numeric, 1) AS state_age_s,
           pg_blocking_pids(a.pid) AS blocked_by,
           a.query
    FROM pg_stat_activity a
    WHERE (a.datname = current_database() OR a.datname IS NULL)
      AND a.pid <> pg_backend_pid()
) q
