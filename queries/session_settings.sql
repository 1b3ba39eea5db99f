-- The session's limits, set for this transaction only (SET LOCAL semantics), so that they also
-- hold behind a transaction-mode connection pooler. JIT compilation is turned off: catalog
-- queries never gain from it, and their cost estimates can cross jit_above_cost and spend
-- tens of milliseconds compiling.
-- Parameters: $1 statement_timeout, $2 lock_timeout, $3 idle_in_transaction_session_timeout
-- Output columns: statement_timeout text, lock_timeout text, idle_timeout text, jit text
-- Oldest PostgreSQL: 11 (jit)
SELECT set_config('statement_timeout', $1, true) AS statement_timeout,
       set_config('lock_timeout', $2, true) AS lock_timeout,
       set_config('idle_in_transaction_session_timeout', $3, true) AS idle_timeout,
       set_config('jit', 'off', true) AS jit
