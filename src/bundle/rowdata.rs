//! PostgreSQL row data in error text: the values a constraint violation, a bad input or a
//! `COPY` quotes, replaced (`row-value`), the column names kept (they explain the failure).
//!
//! The messages, as PostgreSQL words them (`BuildIndexValueDescription`,
//! `ExecBuildSlotValueDescription`, `ri_ReportViolation`, `check_exclusion_or_unique_constraint`,
//! the tuplesort and `COPY` error contexts, the input functions):
//!
//! - `Key (cols)=(values) already exists.` (unique violation), `… is duplicated.` (building
//!   a unique index), `… is not present in table "t".` and `… is still referenced from table
//!   "t".` (foreign keys), `… conflicts with existing key (cols)=(values).` and `… conflicts
//!   with key (cols)=(values).` (exclusion constraints);
//! - `Failing row contains (values).` (not-null, check and partition constraints; `(cols) =
//!   (values)` when the role may read only some columns), `Partition key of the failing row
//!   contains (cols) = (values).`;
//! - `COPY t, line N, column c: "value"` and `COPY t, line N: "line"`;
//! - `invalid input syntax for type t: "value"`, `invalid input value for enum t: "value"`,
//!   `date/time field value out of range: "value"`;
//! - the string literals of the statement a `SQL statement "…"` context quotes (a function's
//!   statement, with the row values it was given).
//!
//! Values are printed unquoted and joined with `, ` (`null` for a null, which is kept), so
//! where a list ends is read from the words that follow it, else the last `)` before the end of
//! the text (in a JSON line, of the string the message is in): a value holding `)` or `, ` is
//! redacted with its neighbours, never left. This module owns the shapes; the redactor
//! (`redact.rs`) numbers the placeholders.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};

/// The placeholder kind (and redaction rule id) of a row value.
pub const ROW_VALUE: &str = "row-value";

/// Where each message starts, in the order [`redact_row_values`] reads them.
const STARTS: [&str; 8] = [
    "Key (",
    "key (",
    "ailing row contains (",
    "COPY ",
    "invalid input syntax for type ",
    "invalid input value for enum ",
    "field value out of range",
    "SQL statement ",
];

/// What follows a `Key (cols)=(values)` list.
const KEY_ENDINGS: [&str; 6] = [
    ") already exists",
    ") is duplicated",
    ") is not present in table",
    ") is still referenced from table",
    ") conflicts with existing key (",
    ") conflicts with key (",
];

fn starts() -> &'static AhoCorasick {
    static STARTS_AC: OnceLock<AhoCorasick> = OnceLock::new();
    STARTS_AC.get_or_init(|| {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(STARTS)
            .expect("fixed patterns compile")
    })
}

/// Whether `text` may quote row data: the cheap test before any reading.
pub fn may_quote_rows(text: &str) -> bool {
    starts().is_match(text)
}

/// Replaces the row values in `text`; `None` when there are none. `json_line`: `text` is a
/// JSON log line, so a message ends at the end of the string it is in.
pub fn redact_row_values(
    text: &str,
    json_line: bool,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    for found in starts().find_iter(text) {
        if found.start() < copied {
            continue;
        }
        let region = region_end(text, found.end(), json_line);
        let pattern = found.pattern().as_usize();
        let span = match pattern {
            0 | 1 => key_values(text, found.end(), region),
            2 => failing_row(text, found.end(), region),
            3 => copy_context(text, found.end(), region),
            7 => quoted(text, found.end(), region),
            _ => quoted_value(text, found.end(), region),
        };
        let Some((start, end, columns)) = span else {
            continue;
        };
        let replaced = if pattern == 7 {
            replace_literals(&text[start..end], placeholder)
        } else {
            replace_list(&text[start..end], columns, placeholder)
        };
        out.push_str(&text[copied..start]);
        out.push_str(&replaced);
        copied = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Where the message at `from` ends: the end of the JSON string it is in (the next unescaped
/// quote) in a JSON line, else the end of the text.
fn region_end(text: &str, from: usize, json_line: bool) -> usize {
    if !json_line {
        return text.len();
    }
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    text.len()
}

/// `cols)=(values)…` after `Key (`: the values' span, and the columns.
fn key_values(text: &str, from: usize, region: usize) -> Option<(usize, usize, Option<usize>)> {
    let head = &text[from..region];
    let columns_end = head.get(..head.len().min(4096))?.find(")=(")?;
    let columns = column_count(&head[..columns_end]);
    let start = from + columns_end + 3;
    let rest = &text[start..region];
    let end = KEY_ENDINGS
        .iter()
        .filter_map(|ending| rest.find(ending))
        .min()
        .or_else(|| rest.rfind(')'))
        .unwrap_or(rest.len());
    Some((start, start + end, Some(columns)))
}

/// `values).` or `cols) = (values).` after `Failing row contains (`.
fn failing_row(text: &str, from: usize, region: usize) -> Option<(usize, usize, Option<usize>)> {
    let rest = &text[from..region];
    let (start, columns) = match rest.find(") = (") {
        Some(split) => (from + split + 5, Some(column_count(&rest[..split]))),
        None => (from, None),
    };
    let rest = &text[start..region];
    let end = rest
        .rfind(").")
        .or_else(|| rest.rfind(')'))
        .unwrap_or(rest.len());
    Some((start, start + end, columns))
}

/// `t, line N, column c: "value"` or `t, line N: "line"` after `COPY `.
fn copy_context(text: &str, from: usize, region: usize) -> Option<(usize, usize, Option<usize>)> {
    let rest = &text[from..region];
    let line = rest.find(", line ")?;
    let digits = rest[line + 7..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 || rest[..line].contains('\n') {
        return None;
    }
    quoted_value(text, from + line + 7 + digits, region)
}

/// `…: "value"` (the quotes escaped as the text is): the value's span.
fn quoted_value(text: &str, from: usize, region: usize) -> Option<(usize, usize, Option<usize>)> {
    let rest = &text[from..region];
    let colon = rest.find(": ")?;
    if colon > 512 || rest[..colon].contains('\n') {
        return None;
    }
    quoted(text, from + colon + 2, region)
}

/// `"value"` at `from` (the quotes escaped as the text is), to the last such quote before the
/// end of the region: the value's span.
fn quoted(text: &str, from: usize, region: usize) -> Option<(usize, usize, Option<usize>)> {
    let after = &text[from..region];
    let slashes = after.bytes().take_while(|b| *b == b'\\').count();
    if after.as_bytes().get(slashes) != Some(&b'"') {
        return None;
    }
    let quote = &after[..=slashes];
    let start = from + quote.len();
    let body = &text[start..region];
    let end = body.rfind(quote).unwrap_or(body.len());
    Some((start, start + end, Some(1)))
}

/// A statement with the content of each of its string literals (`'…'`, `''` inside) replaced.
fn replace_literals(
    statement: &str,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> String {
    let mut out = String::with_capacity(statement.len());
    let mut rest = statement;
    while let Some(open) = rest.find('\'') {
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let mut end = 0;
        loop {
            match body[end..].find('\'') {
                Some(i) if body[end + i + 1..].starts_with('\'') => end += i + 2,
                Some(i) => {
                    end += i;
                    break;
                }
                None => {
                    end = body.len();
                    break;
                }
            }
        }
        let literal = &body[..end];
        if !literal.is_empty() {
            out.push_str(&placeholder(ROW_VALUE, literal));
        }
        out.push('\'');
        rest = body.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The number of columns in `a, b, lower((c)::text)`: commas outside parentheses, plus one.
fn column_count(columns: &str) -> usize {
    let mut depth = 0i32;
    let mut count = 1;
    for c in columns.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => count += 1,
            _ => {}
        }
    }
    count
}

/// A list of values, each replaced but `null`; as one value when it does not split into as
/// many values as there are columns.
fn replace_list(
    values: &str,
    columns: Option<usize>,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> String {
    let mut one = |value: &str| {
        if value == "null" || value.is_empty() {
            value.to_string()
        } else {
            placeholder(ROW_VALUE, value)
        }
    };
    let parts: Vec<&str> = values.split(", ").collect();
    if columns.is_some_and(|n| n != parts.len()) {
        return one(values);
    }
    parts.into_iter().map(one).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn redact(text: &str, json_line: bool) -> String {
        let mut seen: HashMap<String, usize> = HashMap::new();
        redact_row_values(text, json_line, &mut |_, value| {
            let next = seen.len() + 1;
            format!(
                "[row-value-{}]",
                seen.entry(value.to_string()).or_insert(next)
            )
        })
        .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn every_message_that_quotes_row_values_loses_them_and_keeps_its_columns() {
        for (input, output) in [
            (
                "duplicate key value violates unique constraint \"p_mrn\"\nDETAIL:  Key (system, value)=(http://h.org/mrn, MRN-1234) already exists.",
                "duplicate key value violates unique constraint \"p_mrn\"\nDETAIL:  Key (system, value)=([row-value-1], [row-value-2]) already exists.",
            ),
            (
                "Key (lower((email)::text))=(homer@simpson.org) is duplicated.",
                "Key (lower((email)::text))=([row-value-1]) is duplicated.",
            ),
            (
                "Key (patient)=(Homer Simpson) is not present in table \"Patient\".",
                "Key (patient)=([row-value-1]) is not present in table \"Patient\".",
            ),
            (
                "Key (id)=(Homer) is still referenced from table \"Encounter\".",
                "Key (id)=([row-value-1]) is still referenced from table \"Encounter\".",
            ),
            (
                "Key (room, during)=(12, [\"2024-01-01 10:00\",\"2024-01-01 11:00\")) conflicts with existing key (room, during)=(12, [\"2024-01-01 09:30\",\"2024-01-01 10:30\")).",
                "Key (room, during)=([row-value-1], [row-value-2]) conflicts with existing key (room, during)=([row-value-1], [row-value-3]).",
            ),
            (
                "Key (a)=(x) conflicts with key (a)=(y).",
                "Key (a)=([row-value-1]) conflicts with key (a)=([row-value-2]).",
            ),
            (
                "new row for relation \"Patient\" violates check constraint \"c\"\nDETAIL:  Failing row contains (123, Simpson, Homer, 1956-05-12, null).",
                "new row for relation \"Patient\" violates check constraint \"c\"\nDETAIL:  Failing row contains ([row-value-1], [row-value-2], [row-value-3], [row-value-4], null).",
            ),
            (
                "Failing row contains (family, given) = (Simpson, Homer).",
                "Failing row contains (family, given) = ([row-value-1], [row-value-2]).",
            ),
            (
                "no partition of relation \"t\" found for row\nDETAIL:  Partition key of the failing row contains (born) = (1956-05-12).",
                "no partition of relation \"t\" found for row\nDETAIL:  Partition key of the failing row contains (born) = ([row-value-1]).",
            ),
            (
                "CONTEXT:  COPY patient, line 3, column family: \"Simpson\"",
                "CONTEXT:  COPY patient, line 3, column family: \"[row-value-1]\"",
            ),
            (
                "CONTEXT:  COPY patient, line 3: \"123,Simpson,Homer\"",
                "CONTEXT:  COPY patient, line 3: \"[row-value-1]\"",
            ),
            (
                "invalid input syntax for type date: \"1956-13-12\"",
                "invalid input syntax for type date: \"[row-value-1]\"",
            ),
            (
                "invalid input value for enum gender: \"Homer\"",
                "invalid input value for enum gender: \"[row-value-1]\"",
            ),
            (
                "date/time field value out of range: \"1956-05-32\"",
                "date/time field value out of range: \"[row-value-1]\"",
            ),
            (
                "CONTEXT:  SQL statement \"UPDATE person SET family = 'O''Brien' WHERE mrn = 'MRN-1' AND n = 3\"\nPL/pgSQL function fix() line 4 at SQL statement",
                "CONTEXT:  SQL statement \"UPDATE person SET family = '[row-value-1]' WHERE mrn = '[row-value-2]' AND n = 3\"\nPL/pgSQL function fix() line 4 at SQL statement",
            ),
            // Values holding the separators are redacted together.
            (
                "Key (name)=(Simpson, Homer (Jay)) already exists.",
                "Key (name)=([row-value-1]) already exists.",
            ),
            // Nothing quoted: nothing to do.
            ("Key (id) is not present", "Key (id) is not present"),
            ("Key conflicts with existing key.", "Key conflicts with existing key."),
            ("COPY patient FROM stdin", "COPY patient FROM stdin"),
        ] {
            assert_eq!(redact(input, false), output, "{input}");
        }
    }

    #[test]
    fn in_a_json_line_a_message_ends_with_its_string() {
        let line = r#"{"level":"error","msg":"Post-deploy migration threw an error","detail":"Failing row contains (123, O\"Brien (Jr), null)","code":"23514","err":"invalid input syntax for type date: \"1956-13-12\""}"#;
        let out = redact(line, true);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed["detail"],
            "Failing row contains ([row-value-1], [row-value-2], null)"
        );
        assert_eq!(parsed["code"], "23514");
        assert_eq!(
            parsed["err"],
            "invalid input syntax for type date: \"[row-value-3]\""
        );
    }

    #[test]
    fn the_test_before_reading_sees_every_shape() {
        assert!(may_quote_rows("DETAIL: Key (id)=(1) already exists."));
        assert!(may_quote_rows("Failing row contains (1)."));
        assert!(!may_quote_rows(
            "canceling statement due to statement timeout"
        ));
    }
}
