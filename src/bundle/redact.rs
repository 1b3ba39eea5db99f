//! Redaction: what a customer trusts medmig with. Every text that goes into a bundle passes
//! through one [`Redactor`], which replaces secrets and personal data with placeholders such
//! as `[email-3]` — the same value always gets the same placeholder within one bundle, so
//! correlation survives — and counts what it replaced, per rule.
//!
//! Free text from outside is read for structure first: a FHIR resource anywhere in it is
//! redacted by its FHIR types, an allow-list (`fhir.rs`), and the row values PostgreSQL
//! quotes in its errors are replaced (`rowdata.rs`); then the rules that match the shape of a
//! secret, then the keywords. On by default, for every bundle.
//!
//! Keywords (`--keyword`) are words a person chose, so they match whole words only,
//! case-insensitively, and only in free text from outside: log messages, error texts, statements,
//! names. Never in JSON keys, never in the ids, states, kinds and identifiers that medmig,
//! PostgreSQL's catalog or Medplum wrote, never inside the fixed phrases of the messages medmig
//! reads ([`vocabulary`]): a bundle made with any keyword reads back and answers as one made
//! without. Which string of a bundle's JSON is free text is decided in one place,
//! [`string_kind`]. The other rules match shapes no id or state has, and apply everywhere.
//!
//! This module owns the rules and their ids (listed in the README), and which strings are free
//! text. It does not decide what goes into a bundle; `bundle/` calls it on everything that does.

use std::collections::{BTreeMap, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use anyhow::{Context, Result};
use regex::{Captures, Regex};
use serde_json::Value;

use super::logs::MIGRATION_MESSAGES;
use super::{fhir, rowdata};
use crate::analyze::recover::ERROR_CLASSES;

/// What to redact beyond the rules that always apply.
#[derive(Debug, Clone, Default)]
pub struct RedactOptions {
    /// Also replace IPv4 and IPv6 addresses.
    pub redact_ip: bool,
    /// Also replace these words (whole words, case-insensitive, in free text), e.g. a
    /// customer's name.
    pub keywords: Vec<String>,
}

/// One rule: what it matches, and which capture group is the secret (0: all of it).
struct Rule {
    id: &'static str,
    regex: Regex,
    group: usize,
}

/// JSON keys whose values are secrets wherever they appear.
/// In a JSON tree (a config file), any key that names a password, secret, key, token,
/// passphrase or credential: its whole value is replaced (`secret-value`).
const SENSITIVE_KEY: &str = r"(?i)^[a-z0-9_.-]*(password|passwd|pwd|secret|token|authorization|cookie|key|passphrase|credential|connection[_-]?string|signature)[a-z0-9_.-]*$";

/// The rules in the order they run: structured secrets first, so that a URL's password is not
/// half-taken by the e-mail rule.
const RULES: [(&str, &str, usize); 9] = [
    (
        "sensitive-key",
        r#"(?i)"[a-z0-9_.-]*(?:password|passwd|secret|token|authorization|cookie|api[_-]?key|private[_-]?key|credential)[a-z0-9_.-]*"\s*:\s*"((?:[^"\\]|\\.)*)""#,
        1,
    ),
    (
        "url-password",
        r#"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@"'<>]*:([^@\s"'<>/]+)@"#,
        1,
    ),
    (
        "connection-password",
        r#"(?i)\b(?:password|pwd)\s*=\s*('[^']*'|[^\s;&"']+)"#,
        1,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        0,
    ),
    (
        "auth-header",
        r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/-]{8,}=*)",
        1,
    ),
    ("aws-access-key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0),
    (
        "email",
        r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b",
        0,
    ),
    ("us-ssn", r"\b\d{3}-\d{2}-\d{4}\b", 0),
    (
        "phone",
        r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
        0,
    ),
];

const IP_RULES: [(&str, &str, usize); 2] = [
    (
        "ipv4",
        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
        0,
    ),
    (
        "ipv6",
        r"(?i)\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){7}\b|(?:\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?::[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6}\b",
        0,
    ),
];

/// Every rule id (the manifest counts replacements under these ids; the README lists them):
/// the secret rules, the kinds of a FHIR resource's values ([`fhir::KINDS`]) and PostgreSQL's
/// row values ([`rowdata::ROW_VALUE`]).
pub const RULE_IDS: [&str; 25] = rule_ids(
    [
        "sensitive-key",
        "url-password",
        "connection-password",
        "jwt",
        "auth-header",
        "aws-access-key",
        "email",
        "us-ssn",
        "phone",
        "secret-value",
        "ipv4",
        "ipv6",
        "keyword",
    ],
    fhir::KINDS,
    rowdata::ROW_VALUE,
);

/// The secret rules' ids, then the FHIR kinds, then the row values', as one list.
const fn rule_ids(
    secrets: [&'static str; 13],
    fhir: [&'static str; 11],
    row_value: &'static str,
) -> [&'static str; 25] {
    let mut ids = [row_value; 25];
    let mut i = 0;
    while i < secrets.len() {
        ids[i] = secrets[i];
        i += 1;
    }
    let mut j = 0;
    while j < fhir.len() {
        ids[secrets.len() + j] = fhir[j];
        j += 1;
    }
    ids
}

/// A placeholder this redactor wrote (`[email-3]`): no keyword is looked for inside one.
const PLACEHOLDER: &str = r"\[[a-z0-9]+(?:-[a-z0-9]+)*-[0-9]+\]";

/// The fixed phrases of PostgreSQL's and Medplum's messages that medmig reads: the error
/// classes of `recover` and the migration messages a bundle keeps from the logs. They are
/// software's words, not a customer's: a keyword inside one is left, so that the analyses of
/// a redacted bundle answer as the database did (`--keyword lock` must not turn a
/// `lock timeout` into a failure medmig does not recognise).
pub fn vocabulary() -> Vec<&'static str> {
    ERROR_CLASSES
        .iter()
        .flat_map(|class| class.phrases.iter().copied())
        .chain(MIGRATION_MESSAGES)
        .collect()
}

/// A JSON document of a bundle, for [`string_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// A file from outside, all of it (`config/medplum.config.json`): every value is free text.
    Outside,
    /// `snapshot.json`.
    Snapshot,
    /// One `AsyncJob` resource: the JSON text of a snapshot job's `content`.
    Job,
    /// `diagnostics/KIND.json`; its paths start with the kind.
    Diagnostics,
    /// What medmig wrote about the config: `config/sources.json`, `config/post-deploy.json`.
    ConfigReport,
    /// One JSON line of a server log, and the fields of it that the timeline shows.
    LogLine,
}

/// What a string of a bundle's JSON is, by where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    /// Free text from outside (a message, an error, a statement, a name): every rule,
    /// keywords included.
    FreeText,
    /// A value with a meaning of its own that medmig, PostgreSQL's catalog or Medplum wrote (an
    /// id, a state, a kind, an identifier, a definition, a time): never a keyword.
    Structure,
    /// A value that says who someone is wherever it is (the `display` of a reference, the
    /// name of a job's author): replaced whole by a placeholder of this kind.
    Replaced(&'static str),
    /// JSON text: redacted as a document of its own, then written back.
    Json(Document),
}

/// Whether the string at `path` in `document` is free text from outside — the only strings
/// keywords are looked for in. `path` is the object keys from the document's root, array
/// positions left out (`["jobs", "content"]` for the `content` of every job).
///
/// The one place that decides it: a string not listed here is structure.
pub fn string_kind(document: Document, path: &[&str]) -> StringKind {
    use StringKind::{FreeText, Json, Replaced, Structure};
    let free = match document {
        Document::Outside => true,
        Document::Snapshot => match path {
            // A shard's snapshot is a snapshot like the global one.
            ["shards", "snapshot", rest @ ..] => return string_kind(Document::Snapshot, rest),
            // A bundle writes only `global` there (`Snapshot::share_global_schema`).
            ["shards", "schema_same_as"] => false,
            ["jobs", "content"] => return Json(Document::Job),
            ["source", "host" | "database" | "user"]
            | ["activity", "sessions", "application_name" | "query"]
            // A BullMQ job's failure is a migration's error text; the gap quotes a host.
            | ["redis", "queues", "jobs", "failed_reason"]
            | ["redis_gap"]
            // Why a shard was not read quotes its host and the server's error; a shard's id
            // is the operator's name for it, which may be a customer's.
            | ["shards", "gap" | "id"]
            | ["only_shard", "id" | "others"] => true,
            _ => false,
        },
        // The name of a person a reference names (the job's author), as in any resource.
        Document::Job if matches!(path, [.., parent, "display"] if *parent != "coding") => {
            return Replaced("name")
        }
        // Error texts and progress notes of `output`, an OperationOutcome's messages and
        // codings' displays. Ids, states, types, codes, times, the `request` and the parameter
        // names (Medplum's own statements) are the job's structure.
        Document::Job => matches!(
            path,
            [
                ..,
                "valueString" | "valueMarkdown" | "diagnostics" | "display"
            ] | [.., "details", "text"]
        ),
        Document::Diagnostics => matches!(
            path,
            [
                "activity" | "blocking" | "long_transactions",
                "user" | "application" | "client" | "query"
            ] | ["migration_lock", "application_name" | "query"]
                | ["replication", "application" | "client"]
                | ["setting_overrides", "role" | "database" | "settings"]
                | ["database_size" | "server", "database"]
                | ["server", "user"]
        ),
        // Sources, values and notes quote the config; the reason a source is not read is
        // medmig's own sentence.
        Document::ConfigReport => !matches!(path, ["not_read", "why"]),
        Document::LogLine => !matches!(
            path,
            ["level" | "time" | "timestamp" | "@timestamp" | "ts" | "version" | "dataVersion"]
        ),
    };
    if free {
        FreeText
    } else {
        Structure
    }
}

/// Whether an object of a bundle's JSON with a `resourceType` (at `path` in `document`) is a
/// FHIR resource from outside, redacted by its FHIR types (`fhir.rs`). The companion of
/// [`string_kind`] for objects: a job's own resources — the AsyncJob, its output Parameters,
/// an OperationOutcome — are what medmig reads, their strings decided by [`string_kind`]; a log
/// line's root is the record.
pub fn is_fhir_resource(document: Document, path: &[&str], resource_type: &str) -> bool {
    match document {
        Document::Job => !matches!(
            resource_type,
            "AsyncJob" | "Parameters" | "OperationOutcome"
        ),
        Document::LogLine => !path.is_empty(),
        _ => true,
    }
}

/// The keywords, compiled.
struct Keywords {
    /// Every keyword, longest first, between word boundaries (Unicode's).
    regex: Regex,
    /// The [`vocabulary`], case-insensitive: a keyword inside one of its phrases is left.
    vocabulary: AhoCorasick,
    placeholder: Regex,
}

impl Keywords {
    fn new(keywords: &[String]) -> Result<Option<Keywords>> {
        let mut words: Vec<&str> = keywords
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .collect();
        if words.is_empty() {
            return Ok(None);
        }
        words.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        words.dedup();
        // `Acme  Health` is `Acme Health` too; the half boundaries hold whatever the keyword's
        // own first and last characters are (`C++`, `O'Brien`).
        let alternatives: Vec<String> = words
            .iter()
            .map(|word| {
                word.split_whitespace()
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(r"\s+")
            })
            .collect();
        let pattern = format!(
            r"(?i)\b{{start-half}}(?:{})\b{{end-half}}",
            alternatives.join("|")
        );
        Ok(Some(Keywords {
            regex: Regex::new(&pattern).context("the --keyword words")?,
            vocabulary: AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(vocabulary())
                .context("the vocabulary kept from keywords")?,
            placeholder: Regex::new(PLACEHOLDER).context("the placeholder pattern")?,
        }))
    }

    /// Where a keyword is to be replaced in `text`: every match that is not wholly inside a
    /// phrase of the vocabulary or a placeholder.
    fn find(&self, text: &str) -> Vec<(usize, usize)> {
        if !self.regex.is_match(text) {
            return Vec::new();
        }
        let kept: Vec<(usize, usize)> = self
            .vocabulary
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .chain(
                self.placeholder
                    .find_iter(text)
                    .map(|m| (m.start(), m.end())),
            )
            .collect();
        self.regex
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .filter(|(start, end)| !kept.iter().any(|(s, e)| s <= start && end <= e))
            .collect()
    }
}

/// Replaces secrets with stable placeholders and counts them.
pub struct Redactor {
    rules: Vec<Rule>,
    keywords: Option<Keywords>,
    sensitive_key: Regex,
    /// Placeholder number of each (rule, value) seen so far.
    seen: HashMap<(&'static str, String), u32>,
    /// Distinct values per rule.
    distinct: HashMap<&'static str, u32>,
    /// Replacements per rule.
    counts: BTreeMap<&'static str, u64>,
}

impl Redactor {
    /// Builds the rules for `options`.
    pub fn new(options: &RedactOptions) -> Result<Redactor> {
        let mut rules = Vec::new();
        let mut table: Vec<(&'static str, String, usize)> = RULES
            .iter()
            .map(|(id, pattern, group)| (*id, pattern.to_string(), *group))
            .collect();
        if options.redact_ip {
            table.extend(IP_RULES.iter().map(|(id, p, g)| (*id, p.to_string(), *g)));
        }
        for (id, pattern, group) in table {
            rules.push(Rule {
                id,
                regex: Regex::new(&pattern).with_context(|| format!("redaction rule {id}"))?,
                group,
            });
        }
        Ok(Redactor {
            rules,
            keywords: Keywords::new(&options.keywords)?,
            sensitive_key: Regex::new(SENSITIVE_KEY).context("the sensitive-key rule")?,
            seen: HashMap::new(),
            distinct: HashMap::new(),
            counts: BTreeMap::new(),
        })
    }

    /// Replacements made so far, per rule id.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// The placeholder for `value` under rule `id`, the same every time within this redactor.
    fn placeholder(&mut self, id: &'static str, value: &str) -> String {
        *self.counts.entry(id).or_default() += 1;
        let key = (id, value.to_string());
        let number = match self.seen.get(&key) {
            Some(n) => *n,
            None => {
                let next = self.distinct.entry(id).or_default();
                *next += 1;
                let n = *next;
                self.seen.insert(key, n);
                n
            }
        };
        format!("[{id}-{number}]")
    }

    /// Redacts free text from outside: its FHIR resources and row values, every rule, then
    /// the keywords.
    pub fn text(&mut self, input: &str) -> String {
        let structured = self.structured(input, false);
        let text = self.secrets(structured.as_deref().unwrap_or(input));
        self.keywords(&text)
    }

    /// The rules that read structure: FHIR resources (only in a text with `resourceType`),
    /// then PostgreSQL's row values (only in a text with one of their messages). `None` when
    /// neither found anything. `json_line`: `text` is a JSON log line.
    fn structured(&mut self, text: &str, json_line: bool) -> Option<String> {
        let mut placeholder = |kind: &'static str, value: &str| self.placeholder(kind, value);
        let resources = fhir::redact_embedded(text, json_line, &mut placeholder);
        let current = resources.as_deref().unwrap_or(text);
        let rows = if rowdata::may_quote_rows(current) {
            rowdata::redact_row_values(current, json_line, &mut placeholder)
        } else {
            None
        };
        rows.or(resources)
    }

    /// The rules that match the shape of a secret (everything but the keywords).
    fn secrets(&mut self, input: &str) -> String {
        let mut text = input.to_string();
        for index in 0..self.rules.len() {
            let (id, group) = (self.rules[index].id, self.rules[index].group);
            if !self.rules[index].regex.is_match(&text) {
                continue;
            }
            let regex = self.rules[index].regex.clone();
            text = regex
                .replace_all(&text, |caps: &Captures<'_>| {
                    let whole = caps.get(0).map_or("", |m| m.as_str());
                    match caps.get(group) {
                        Some(secret) if group > 0 => {
                            let start = secret.start() - caps.get(0).map_or(0, |m| m.start());
                            let end = start + secret.len();
                            let placeholder = self.placeholder(id, secret.as_str());
                            format!("{}{placeholder}{}", &whole[..start], &whole[end..])
                        }
                        _ => self.placeholder(id, whole),
                    }
                })
                .into_owned();
        }
        text
    }

    /// Replaces the keywords in free text, as whole words (see [`Keywords::find`]).
    fn keywords(&mut self, text: &str) -> String {
        let found = match &self.keywords {
            Some(keywords) => keywords.find(text),
            None => Vec::new(),
        };
        if found.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in found {
            out.push_str(&text[copied..start]);
            // `Mary` and `MARY` are one person: one placeholder.
            let placeholder = self.placeholder("keyword", &text[start..end].to_lowercase());
            out.push_str(&placeholder);
            copied = end;
        }
        out.push_str(&text[copied..]);
        out
    }

    /// Redacts one server log line: its FHIR resources and row values, the rules over all of
    /// it; the keywords in the values of a JSON line that are free text
    /// ([`Document::LogLine`]), never in its keys, and anywhere in a plain line. A JSON line
    /// stays valid JSON, byte for byte where nothing was replaced.
    pub fn log_line(&mut self, line: &str) -> String {
        let json_line = line.trim_start().starts_with('{');
        let structured = self.structured(line, json_line);
        let text = self.secrets(structured.as_deref().unwrap_or(line));
        if self.keywords.is_none() {
            return text;
        }
        let json = text.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        if !json {
            return self.keywords(&text);
        }
        // Strings of a JSON line are read token by token: keys, and values by their path.
        enum Frame {
            Object { key: Option<String>, at_key: bool },
            Array,
        }
        let bytes = text.as_bytes();
        let mut stack: Vec<Frame> = Vec::new();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => stack.push(Frame::Object {
                    key: None,
                    at_key: true,
                }),
                b'[' => stack.push(Frame::Array),
                b'}' | b']' => {
                    stack.pop();
                }
                b':' | b',' => {
                    if let Some(Frame::Object { at_key, .. }) = stack.last_mut() {
                        *at_key = bytes[i] == b',';
                    }
                }
                b'"' => {
                    // The string ends at the next unescaped quote (the line parsed as JSON;
                    // should it not end, the line is redacted as plain text).
                    let mut end = i + 1;
                    while bytes.get(end).is_some_and(|b| *b != b'"') {
                        end += if bytes[end] == b'\\' { 2 } else { 1 };
                    }
                    if end >= bytes.len() {
                        return self.keywords(&text);
                    }
                    let token = &text[i..=end];
                    let value: String = serde_json::from_str(token).unwrap_or_default();
                    if let Some(Frame::Object { key, at_key: true }) = stack.last_mut() {
                        *key = Some(value);
                    } else {
                        let path: Vec<&str> = stack
                            .iter()
                            .filter_map(|frame| match frame {
                                Frame::Object { key, .. } => key.as_deref(),
                                Frame::Array => None,
                            })
                            .collect();
                        if string_kind(Document::LogLine, &path) == StringKind::FreeText {
                            let redacted = self.keywords(&value);
                            if redacted != value {
                                out.push_str(&text[copied..i]);
                                out.push_str(&Value::String(redacted).to_string());
                                copied = end + 1;
                            }
                        }
                    }
                    i = end;
                }
                _ => {}
            }
            i += 1;
        }
        out.push_str(&text[copied..]);
        out
    }

    /// Redacts a JSON file from outside in place: [`Redactor::document`] of a
    /// [`Document::Outside`].
    pub fn json(&mut self, value: &mut Value) {
        self.document(value, Document::Outside, &[]);
    }

    /// Redacts the part of a JSON `document` at `at` in place: values under sensitive keys
    /// become placeholders whole, free text ([`string_kind`]) is redacted as text, any other
    /// string by the rules but not the keywords. Keys are kept; the result is valid JSON.
    pub fn document(&mut self, value: &mut Value, document: Document, at: &[&str]) {
        let mut path: Vec<String> = at.iter().map(|key| key.to_string()).collect();
        self.walk(value, document, &mut path);
    }

    fn walk(&mut self, value: &mut Value, document: Document, path: &mut Vec<String>) {
        if let Some(ty) = value.get("resourceType").and_then(Value::as_str) {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            if is_fhir_resource(document, &keys, ty) {
                let text = value.to_string();
                let redacted =
                    fhir::redact_resource(&text, &mut |kind, v| self.placeholder(kind, v));
                let redacted = self.secrets(&redacted);
                *value = serde_json::from_str(&redacted)
                    .unwrap_or_else(|_| Value::String(self.placeholder("value", &text)));
                return;
            }
        }
        match value {
            Value::String(text) => {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                *text = match string_kind(document, &keys) {
                    StringKind::FreeText => self.text(text),
                    StringKind::Structure => self.secrets(text),
                    StringKind::Replaced(kind) => self.placeholder(kind, text),
                    StringKind::Json(inner) => match serde_json::from_str::<Value>(text) {
                        Ok(mut tree) => {
                            let before = tree.clone();
                            self.walk(&mut tree, inner, &mut Vec::new());
                            if tree == before {
                                return;
                            }
                            tree.to_string()
                        }
                        // Text that is not JSON has no structure to keep.
                        Err(_) => self.text(text),
                    },
                };
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| self.walk(item, document, path)),
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let secret = self.sensitive_key.is_match(key)
                        && matches!(item, Value::String(_) | Value::Number(_));
                    if secret {
                        let shown = match &*item {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        *item = Value::String(self.placeholder("secret-value", &shown));
                    } else {
                        path.push(key.clone());
                        self.walk(item, document, path);
                        path.pop();
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&RedactOptions {
            redact_ip: true,
            keywords: vec!["Acme Health".into()],
        })
        .unwrap()
    }

    fn with_keywords(keywords: &[&str]) -> Redactor {
        Redactor::new(&RedactOptions {
            redact_ip: false,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn keywords_match_whole_words_in_any_case_and_script() {
        let mut r = with_keywords(&["Mary", "Tim", "Zoë", "Ana", "Acme Health", "C++"]);
        for (input, output) in [
            ("Mary called", "[keyword-1] called"),
            ("MARY and mary", "[keyword-1] and [keyword-1]"),
            ("Mary's chart", "[keyword-1]'s chart"),
            ("ZOË arrived", "[keyword-2] arrived"),
            ("ana.", "[keyword-3]."),
            ("at acme   health today", "at [keyword-4] today"),
            ("uses C++ daily", "uses [keyword-5] daily"),
            // Inside a word: left.
            ("primary-key", "primary-key"),
            ("lock timeout, Timothy", "lock timeout, Timothy"),
            ("Zoëlla", "Zoëlla"),
            // ï is a letter: `Ana` is not a word of `Anaïs` (an ASCII boundary would say it is).
            ("Anaïs", "Anaïs"),
            ("Acme Healthcare", "Acme Healthcare"),
        ] {
            assert_eq!(r.text(input), output, "{input}");
        }
    }

    #[test]
    fn keywords_spare_the_phrases_medmig_reads_and_placeholders() {
        let mut r = with_keywords(&["lock", "failed", "email", "deadlock"]);
        for kept in [
            "canceling statement due to lock timeout",
            "could not obtain lock on relation \"Patient\"",
            "deadlock detected",
            "Failed to acquire migration lock",
            "Post-deploy migration assertion failed",
        ] {
            assert_eq!(r.text(kept), kept);
        }
        assert_eq!(
            r.text("Lock Health held the lock: lock timeout"),
            "[keyword-1] Health held the [keyword-1]: lock timeout"
        );
        assert_eq!(r.text("mail a@example.org"), "mail [email-1]");
    }

    #[test]
    fn keywords_never_touch_the_structure_of_a_snapshot() {
        let mut r = with_keywords(&[
            "Mary", "accepted", "status", "key", "active", "lock", "error",
        ]);
        let content = json!({
            "resourceType": "AsyncJob", "status": "accepted", "type": "data-migration",
            "request": "data-migration-v45", "meta": {"author": {"display": "Mary Jones"}},
            "output": {"parameter": [
                {"name": "error", "valueString": "Mary's lock timeout"},
                {"name": "outcome", "resource": {"issue": [
                    {"severity": "error", "code": "lock", "details": {"text": "status of Mary"}}]}}]}
        });
        let schema = json!({"tables": {"Patient": {
            "columns": [{"name": "status", "data_type": "text"}],
            "constraints": {"Patient_pkey": {"kind": "primary-key", "definition": "PRIMARY KEY (id)"}}}}});
        let mut snapshot = json!({
            "source": {"host": "mary.example.org", "database": "medplum", "user": "mary"},
            "jobs": [{"id": "e45", "status_column": "accepted", "content": content.to_string()}],
            "job_history": [{"job_id": "e45", "status": "accepted"}],
            "activity": {"sessions": [{"state": "active", "application_name": "Mary's psql",
                                        "query": "UPDATE t SET status = 1"}]},
            "schema": schema,
        });
        r.document(&mut snapshot, Document::Snapshot, &[]);
        assert_eq!(snapshot["schema"], schema);
        assert_eq!(snapshot["jobs"][0]["status_column"], "accepted");
        assert_eq!(snapshot["job_history"][0]["status"], "accepted");
        assert_eq!(snapshot["activity"]["sessions"][0]["state"], "active");
        assert_eq!(
            snapshot["activity"]["sessions"][0]["query"],
            "UPDATE t SET [keyword-2] = 1"
        );
        assert_eq!(snapshot["source"]["host"], "[keyword-1].example.org");
        assert_eq!(snapshot["source"]["user"], "[keyword-1]");
        let job: Value =
            serde_json::from_str(snapshot["jobs"][0]["content"].as_str().unwrap()).unwrap();
        assert_eq!(job["status"], "accepted");
        assert_eq!(job["request"], "data-migration-v45");
        // A reference's display is a name, whatever the keywords.
        assert_eq!(job["meta"]["author"]["display"], "[name-1]");
        let parameters = &job["output"]["parameter"];
        assert_eq!(parameters[0]["name"], "error");
        assert_eq!(parameters[0]["valueString"], "[keyword-1]'s lock timeout");
        let issue = &parameters[1]["resource"]["issue"][0];
        assert_eq!(
            (&issue["severity"], &issue["code"]),
            (&json!("error"), &json!("lock"))
        );
        assert_eq!(issue["details"]["text"], "[keyword-2] of [keyword-1]");

        let mut rows = json!([{"state": "active", "backend_type": "client backend",
                               "user": "mary", "query": "SELECT status FROM t"}]);
        r.document(&mut rows, Document::Diagnostics, &["activity"]);
        assert_eq!(
            rows,
            json!([{"state": "active", "backend_type": "client backend",
                    "user": "[keyword-1]", "query": "SELECT [keyword-2] FROM t"}])
        );
    }

    #[test]
    fn json_log_lines_lose_keywords_in_their_values_only() {
        let mut r = with_keywords(&["Mary", "Tim", "error", "status", "accepted", "Zoë", "msg"]);
        let line = r#"{"level":"error","time":"2026-03-01T10:00:00Z","msg":"Mary: lock timeout","err":{"type":"Error","message":"Tim\nMary"},"status":"accepted","Mary":1,"who":"Zo\u00eb"}"#;
        let out = r.log_line(line);
        let (before, after): (Value, Value) = (
            serde_json::from_str(line).unwrap(),
            serde_json::from_str(&out).unwrap(),
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&after), keys(&before));
        assert_eq!(after["level"], "error");
        assert_eq!(after["time"], before["time"]);
        assert_eq!(after["msg"], "[keyword-1]: lock timeout");
        assert_eq!(after["err"]["type"], "[keyword-2]");
        assert_eq!(after["err"]["message"], "[keyword-3]\n[keyword-1]");
        assert_eq!(after["status"], "[keyword-4]");
        assert_eq!(after["Mary"], 1);
        assert_eq!(after["who"], "[keyword-5]");
        // Untouched where nothing matched, byte for byte; the order of keys is the line's.
        assert!(out.starts_with(r#"{"level":"error","time":"2026-03-01T10:00:00Z","msg":"#));
        let clean = r#"{"level":"error",  "msg":"Timothy's \"lock\" timeout"}"#;
        assert_eq!(r.log_line(clean), clean);
        // A plain line: whole words anywhere.
        assert_eq!(
            r.log_line("2026-03-01 10:07:00 ERROR Mary: lock timeout (Timothy)"),
            "2026-03-01 10:07:00 [keyword-2] [keyword-1]: lock timeout (Timothy)"
        );
    }

    #[test]
    fn every_rule_replaces_its_secret() {
        let mut r = redactor();
        let cases = [
            (r#"{"password":"hunter2","msg":"x"}"#, "hunter2"),
            ("postgres://medplum:S3cr3t!@db.internal:5432/medplum", "S3cr3t!"),
            ("host=db user=medplum password=pa55word dbname=medplum", "pa55word"),
            ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJhbGciOiJIUzI1NiJ9"),
            ("Authorization: Bearer abcdef0123456789xyz", "abcdef0123456789xyz"),
            ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
            ("key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"),
            ("contact zebulon.q@example.org now", "zebulon.q@example.org"),
            ("ssn 123-45-6789 on file", "123-45-6789"),
            ("call (555) 867-5309 or +1 555-867-5309", "867-5309"),
            ("from 10.20.30.40 and fe80::1ff:fe23:4567:890a", "10.20.30.40"),
            ("from fe80::1ff:fe23:4567:890a", "fe80::1ff"),
            ("patient at ACME HEALTH clinic", "ACME HEALTH"),
        ];
        for (input, secret) in cases {
            let out = r.text(input);
            assert!(!out.contains(secret), "{input} → {out}");
            assert!(out.contains('['), "{out}");
        }
    }

    #[test]
    fn every_placeholder_kind_is_a_rule() {
        for kind in fhir::KINDS.iter().chain([&rowdata::ROW_VALUE]) {
            assert!(RULE_IDS.contains(kind), "{kind}");
        }
    }

    /// Homer as @medplum/mock writes him, shortened.
    const HOMER: &str = r#"{"resourceType":"Patient","id":"123","meta":{"versionId":"2","lastUpdated":"2020-01-02T00:00:00.000Z"},"identifier":[{"system":"abc","value":"MRN-1234"}],"birthDate":"1956-05-12","name":[{"given":["Homer"],"family":"Simpson"}],"gender":"male","telecom":[{"system":"email","value":"chunkylover53@aol.com"}],"address":[{"line":["742 Evergreen Terrace"],"postalCode":"12345"}]}"#;

    #[test]
    fn the_same_person_gets_the_same_placeholders_in_every_shape_and_document() {
        let mut r = with_keywords(&[]);
        let homer: Value = serde_json::from_str(HOMER).unwrap();
        let escaped = Value::String(format!("invalid {HOMER}")).to_string();
        let field = r.log_line(&format!(
            r#"{{"level":"error","msg":"Post-deploy migration threw an error","resource":{HOMER}}}"#
        ));
        let message = r.log_line(&format!(
            r#"{{"level":"error","msg":"Post-deploy migration threw an error","err":{escaped}}}"#
        ));
        let plain = r.log_line(&format!("2026-03-01 10:07:00 ERROR {HOMER}"));
        let text = r.text(&format!("error: {HOMER}"));
        let mut job = json!({"resourceType": "AsyncJob", "status": "error",
            "requestTime": "2026-03-01T10:00:00.000Z", "dataVersion": 45,
            "output": {"resourceType": "Parameters", "parameter": [
                {"name": "error", "valueString": format!("duplicate key value violates unique constraint \"x\": {HOMER}")},
                {"name": "outcome", "resource": {"resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Key (family)=(Simpson) already exists."}]}},
                {"name": "patient", "resource": homer}]}});
        let before = job.clone();
        r.document(&mut job, Document::Job, &[]);
        for out in [&field, &message, &plain, &text, &job.to_string()] {
            for leaked in [
                "Homer",
                "Simpson",
                "1956-05-12",
                "MRN-1234",
                "chunkylover",
                "Evergreen",
                "12345",
            ] {
                assert!(!out.contains(leaked), "{leaked} in {out}");
            }
            // Homer's family name is [name-2] everywhere but in row data.
            assert!(
                out.contains("[name-2]") || out.contains("[row-value-1]"),
                "{out}"
            );
        }
        assert!(field.contains(r#""family":"[name-2]""#), "{field}");
        assert!(message.contains(r#"\"family\":\"[name-2]\""#), "{message}");
        assert!(plain.contains(r#""family":"[name-2]""#), "{plain}");
        // The job's own structure is untouched: what status reads stays.
        for key in ["resourceType", "status", "requestTime", "dataVersion"] {
            assert_eq!(job[key], before[key], "{key}");
        }
        let parameters = &job["output"]["parameter"];
        assert!(parameters[0]["valueString"]
            .as_str()
            .unwrap()
            .starts_with("duplicate key value violates unique constraint \"x\": {"));
        assert_eq!(
            parameters[1]["resource"]["issue"][0]["diagnostics"],
            "Key (family)=([row-value-1]) already exists."
        );
        assert_eq!(parameters[2]["resource"]["gender"], "male");
        assert_eq!(parameters[2]["resource"]["name"][0]["family"], "[name-2]");
        for line in [&field, &message] {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "{line}");
        }
    }

    #[test]
    fn the_readme_lists_every_rule() {
        let readme = include_str!("../../README.md");
        for id in RULE_IDS {
            assert!(
                readme.contains(&format!("`{id}`")),
                "README lacks rule `{id}`"
            );
        }
    }

    #[test]
    fn the_same_value_gets_the_same_placeholder() {
        let mut r = redactor();
        let a = r.text("a@example.org then b@example.org then a@example.org");
        assert_eq!(a, "[email-1] then [email-2] then [email-1]");
        assert_eq!(r.counts()["email"], 3);
    }

    #[test]
    fn timestamps_versions_and_uuids_survive() {
        let mut r = redactor();
        for keep in [
            "2025-06-02T10:04:05.123Z",
            "Pending post-deploy migration v14 requires server at version 4.3.0 <= version < 4.4.0",
            "job 0f8e7a52-4cde-4b39-9d5b-8a6f0e4c1d11 took 12.5s",
            "duration 1234 ms",
        ] {
            assert_eq!(r.text(keep), keep);
        }
    }

    #[test]
    fn json_trees_stay_valid_and_lose_their_secrets() {
        let mut r = redactor();
        let mut config = json!({
            "database": {"host": "db", "password": "pw1", "port": 5432},
            "clientSecret": "cs", "signingKey": "k", "apiKey": 12345,
            "redis": {"url": "redis://:redispw@cache:6379"},
            "admins": ["zebulon.q@example.org"]
        });
        r.json(&mut config);
        let text = config.to_string();
        for secret in ["pw1", "\"cs\"", "12345", "redispw", "zebulon"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(config["database"]["host"], "db");
        assert_eq!(config["database"]["port"], 5432);
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
