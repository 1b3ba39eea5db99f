//! Human-readable text shared by messages and reports: elapsed times, numbers, counts, one-line
//! excerpts, and the escaping of control characters that every printer applies to text from
//! outside. Pure functions, no knowledge of Medplum.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// Whether `c` must not reach a terminal raw: the C0 controls (escape sequences, carriage
/// return, newline, tab…), DEL, the C1 controls (U+0080–U+009F, `U+009B` is a CSI on some
/// terminals), the line and paragraph separators, and the bidirectional marks, embeddings,
/// overrides and isolates that reorder what is shown (U+061C, U+200E–U+200F, U+202A–U+202E,
/// U+2066–U+2069).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character of [`needs_escape`] written visibly, as Rust writes it:
/// `\n`, `\r`, `\t`, `\x1b` for the other C0 controls and DEL, `\u{202e}` above. Everything
/// medmig prints for people (tables, Markdown, CSV, messages, `error:` lines) passes through
/// here, so that a name or message from a database, a file or an archive can neither move the
/// cursor nor start a line of its own. A backslash is left as it is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) <= 0x7f => {
                let _ = write!(escaped, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// `one` when `n` is 1, else `many`.
pub fn plural<'a, N: PartialEq + From<u8>>(n: N, one: &'a str, many: &'a str) -> &'a str {
    if n == N::from(1) {
        one
    } else {
        many
    }
}

/// `1 function`, `0 functions`, `2 functions`.
pub fn count<N>(n: N, one: &str, many: &str) -> String
where
    N: PartialEq + From<u8> + Copy + std::fmt::Display,
{
    format!("{n} {}", plural(n, one, many))
}

/// An elapsed time for people: `850ms`, `42s`, `3m 12s`, `2h 05m`, `3d 04h`.
pub fn elapsed(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    let whole = seconds as u64;
    if seconds < 1.0 {
        format!("{}ms", (seconds * 1000.0).round() as u64)
    } else if whole < 60 {
        format!("{whole}s")
    } else if whole < 3600 {
        format!("{}m {:02}s", whole / 60, whole % 60)
    } else if whole < 86_400 {
        format!("{}h {:02}m", whole / 3600, whole / 60 % 60)
    } else {
        format!("{}d {:02}h", whole / 86_400, whole / 3600 % 24)
    }
}

/// A duration as the command-line flags take it: `2s`, `1m30s`, `500ms`, `1h`.
pub fn flag_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

/// `1234567` → `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first line of `text` with its white space folded, cut to `max` characters with an
/// ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").split_whitespace();
    let line = line.collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times_read_naturally() {
        assert_eq!(elapsed(0.25), "250ms");
        assert_eq!(elapsed(42.9), "42s");
        assert_eq!(elapsed(192.0), "3m 12s");
        assert_eq!(elapsed(7500.0), "2h 05m");
        assert_eq!(elapsed(18_000.0), "5h 00m");
        assert_eq!(elapsed(180_000.0), "2d 02h");
    }

    #[test]
    fn flag_durations_print_as_the_flags_take_them() {
        assert_eq!(flag_duration(Duration::from_secs(2)), "2s");
        assert_eq!(flag_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(flag_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(flag_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn numbers_and_excerpts() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(shorten("a  b\nc", 10), "a b");
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
        assert_eq!(count(1usize, "function", "functions"), "1 function");
        assert_eq!(count(0u64, "function", "functions"), "0 functions");
        assert_eq!(count(2u32, "index", "indexes"), "2 indexes");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert!(matches!(escape_controls("plain – text…"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[31mred\r\nerror: all good\t\u{7f}"),
            "a\\x1b[31mred\\r\\nerror: all good\\t\\x7f"
        );
        assert_eq!(escape_controls("\u{0}\u{7}"), "\\x00\\x07");
        assert_eq!(
            escape_controls("x\u{9b}1m\u{202e}txt.exe\u{2066}\u{2028}"),
            "x\\u{9b}1m\\u{202e}txt.exe\\u{2066}\\u{2028}"
        );
        // A backslash stays: Windows paths and regular expressions read as written.
        assert_eq!(escape_controls("C:\\logs\\x1b"), "C:\\logs\\x1b");
        for c in (0u32..0x30000).filter_map(char::from_u32) {
            let shown = escape_controls(&c.to_string()).into_owned();
            assert!(!shown.chars().any(needs_escape), "{c:?} -> {shown:?}");
        }
    }
}
