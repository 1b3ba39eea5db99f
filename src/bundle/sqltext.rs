//! Query text without its data: every literal and comment of a SQL statement replaced, so
//! that `pg_stat_activity` can go into a bundle. A running query's literals can hold patient
//! data (`WHERE name = 'Zebulon'`); its shape is what support needs.

/// Replaces string literals (`'…'`, `E'…'`, `$tag$…$tag$`), numbers and comments with `?`,
/// keeping identifiers (`"Patient"`), keywords and parameters (`$1`).
pub fn strip_literals(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while i < chars.len() {
        let c = chars[i];
        let previous_is_word = out
            .chars()
            .last()
            .is_some_and(|p| p.is_alphanumeric() || p == '_');
        match c {
            '-' if at(i + 1) == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                out.push('?');
                continue;
            }
            '/' if at(i + 1) == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && at(i + 1) == Some('/')) {
                    i += 1;
                }
                i += 2;
                out.push('?');
                continue;
            }
            '"' => {
                // A quoted identifier: kept.
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '"' {
                        if at(i + 1) == Some('"') {
                            out.push('"');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            '\'' => {
                let escapes = previous_is_word && out.ends_with(['E', 'e']);
                if escapes {
                    out.pop();
                }
                i = skip_quoted(&chars, i + 1, escapes);
                out.push('?');
                continue;
            }
            '$' if at(i + 1).is_some_and(|n| n.is_ascii_digit()) => {
                // A parameter: kept.
                out.push(c);
                i += 1;
                while at(i).is_some_and(|d| d.is_ascii_digit()) {
                    out.push(chars[i]);
                    i += 1;
                }
                continue;
            }
            '$' if !previous_is_word => {
                if let Some(end) = dollar_quote_end(&chars, i) {
                    i = end;
                    out.push('?');
                    continue;
                }
                out.push(c);
                i += 1;
            }
            d if d.is_ascii_digit() && !previous_is_word => {
                while at(i).is_some_and(|n| n.is_ascii_alphanumeric() || n == '.' || n == '_') {
                    i += 1;
                }
                out.push('?');
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Index after the closing quote of a `'…'` literal that starts at `i` (after the quote).
fn skip_quoted(chars: &[char], mut i: usize, backslash_escapes: bool) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' if backslash_escapes => i += 2,
            '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For a `$tag$` opening at `start`, the index after the matching close.
fn dollar_quote_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    if chars.get(j) != Some(&'$') {
        return None;
    }
    let tag: Vec<char> = chars[start..=j].to_vec();
    let mut k = j + 1;
    while k + tag.len() <= chars.len() {
        if chars[k..k + tag.len()] == tag[..] {
            return Some(k + tag.len());
        }
        k += 1;
    }
    Some(chars.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_go_and_shape_stays() {
        assert_eq!(
            strip_literals(
                r#"SELECT * FROM "Patient" WHERE "name" = 'Zebulon O''Hara' AND "__version" < 7"#
            ),
            r#"SELECT * FROM "Patient" WHERE "name" = ? AND "__version" < ?"#
        );
        assert_eq!(
            strip_literals(
                "UPDATE x SET a = E'line\\'s end', b = $body$ secret $body$ WHERE id = $1"
            ),
            "UPDATE x SET a = ?, b = ? WHERE id = $1"
        );
        assert_eq!(
            strip_literals("SELECT 1.5e3, col2 FROM t -- patient Zebulon\n/* ssn 123-45-6789 */"),
            "SELECT ?, col2 FROM t ?\n?"
        );
        assert_eq!(
            strip_literals("SELECT '1' || 'unterminated"),
            "SELECT ? || ?"
        );
        assert_eq!(
            strip_literals(r#"SELECT "we""ird" FROM t2"#),
            r#"SELECT "we""ird" FROM t2"#
        );
    }
}
