//! A server that stops answering: medmig gives up in time, with a line that names the limit.

use std::time::Duration;

use crate::harness::{medmig_within, TestDb};
use crate::relay::{Plan, Relay};

#[test]
fn a_server_that_stops_answering_is_given_up_on_at_the_statement_timeout_plus_the_margin() {
    let db = TestDb::with(&["schema", "deferred-new-minor"]);
    // Answers counted: 1 ends the startup, 2 is BEGIN's, 3 and 4 the limits' and the probe's;
    // the next is the first of the pipelined flight.
    for (answers, reading) in [
        (1, "the start of a read-only transaction"),
        (4, "the catalog and the migration tables"),
    ] {
        let relay = Relay::start(
            &db,
            Plan {
                stall_after: Some(answers),
            },
        );
        let (run, took) = medmig_within(
            &[
                "status",
                "--database-url",
                &relay.url,
                "--statement-timeout",
                "1s",
            ],
            Duration::from_secs(40),
        );
        let line = run.single_error();
        assert!(
            line.contains(&format!("while reading {reading} for 6s"))
                && line.contains("--statement-timeout 1s plus 5s for the network"),
            "{line}"
        );
        // The deadline, and not much more: the session is abandoned, not waited for.
        assert!(
            took >= Duration::from_secs(6) && took < Duration::from_secs(12),
            "took {took:?}"
        );
        let (_, ended) = relay.finish();
        assert_eq!(ended, Ok(()), "medmig closed its side");
    }
}
