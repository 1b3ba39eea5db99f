-- Replication: whether this server is a replica and how far behind it is, and the lag of
-- each replica it feeds, in seconds.
-- Output columns: rows jsonb (array of {role, application, client, state, sync_state,
--   write_lag_s, flush_lag_s, replay_lag_s})
-- Oldest PostgreSQL: 10
SELECT jsonb_build_array(jsonb_build_object(
           'role', CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END,
           'replay_delay_s', CASE WHEN pg_is_in_recovery()
               THEN round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 1) END))
       || coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'role', 'replica-of-this-server',
                      'application', r.application_name,
                      'client', r.client_addr::text,
                      'state', r.state,
                      'sync_state', r.sync_state,
                      'write_lag_s', round(extract(epoch FROM r.write_lag)::numeric, 3),
                      'flush_lag_s', round(extract(epoch FROM r.flush_lag)::numeric, 3),
                      'replay_lag_s', round(extract(epoch FROM r.replay_lag)::numeric, 3)))
           FROM pg_stat_replication r), '[]'::jsonb) AS rows
