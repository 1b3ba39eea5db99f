//! A server log file (`bundle --logs`), plain or gzip: `logs::ingest` (line splitting, the
//! keep filter, JSON and plain line parsing, redaction), then the timeline of what it kept,
//! alone and merged with a fixture's job history.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use medmig::bundle::logs::{ingest, LogWindow};
use medmig::bundle::redact::{RedactOptions, Redactor};
use medmig::bundle::timeline::timeline;
use medmig_fuzz::{fixture_status, scratch_dir, scratch_file};

thread_local! {
    /// The redactor is built once (its rules are a dozen regexes) and renewed now and then,
    /// since it remembers every value it replaced.
    static REDACTOR: RefCell<(Redactor, u32)> = RefCell::new((redactor(), 0));
}

fn redactor() -> Redactor {
    Redactor::new(&RedactOptions {
        redact_ip: true,
        keywords: vec!["Zebulon".into(), "Tim".into()],
    })
    .expect("the redaction rules")
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("server.log", data);
    let out_dir = scratch_dir().join("logs");
    std::fs::create_dir_all(&out_dir).expect("the output directory");
    REDACTOR.with(|cell| {
        let (redactor, uses) = &mut *cell.borrow_mut();
        *uses += 1;
        if *uses > 1000 {
            *redactor = self::redactor();
            *uses = 0;
        }
        let ingested = ingest(
            &[path],
            LogWindow::default(),
            redactor,
            &out_dir,
            &mut |_| {},
        );
        if let Ok(ingested) = ingested {
            let _ = timeline(None, &[], &ingested.events);
            let _ = timeline(Some(fixture_status()), &[], &ingested.events);
        }
    });
});
