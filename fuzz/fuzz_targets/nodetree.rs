//! Index expression node trees (`pg_node_tree` text from the catalog, kept in snapshots):
//! both printers of `nodetree`.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use medmig::catalog::ColumnName;
use medmig::nodetree::{boolean_equality, call_on_columns};

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = std::str::from_utf8(data) else {
        return;
    };
    let columns: BTreeMap<i16, ColumnName> = [(1, "id"), (2, "\"__codeText\""), (3, "deleted")]
        .into_iter()
        .map(|(number, quoted)| {
            (
                number,
                ColumnName {
                    quoted: quoted.to_string(),
                    collation: 0,
                },
            )
        })
        .collect();
    let _ = call_on_columns("token_array_to_text", tree, &columns);
    let _ = boolean_equality(tree, &columns);
});
