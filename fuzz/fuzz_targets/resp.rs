//! Redis's replies (RESP2) as medmig reads them from a server it does not trust: lengths,
//! nesting and totals are bounded before anything is allocated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::sources::redis::resp::{decode, ReplyLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ReplyLimits {
        bulk_bytes: 1 << 16,
        array_items: 1 << 12,
        total_bytes: 1 << 20,
    };
    let _ = decode(data, 4, limits);
});
