//! Redaction: what a customer trusts medmig with. Every text that goes into a bundle passes
//! through one [`Redactor`], which replaces secrets and personal data with placeholders such
//! as `[email-3]` — the same value always gets the same placeholder within one bundle, so
//! correlation survives — and counts what it replaced, per rule.
//!
//! This module owns the rules and their ids (listed in the README). It does not decide what
//! goes into a bundle; `bundle/` calls it on everything that does.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use regex::{Captures, Regex};
use serde_json::Value;

/// What to redact beyond the rules that always apply.
#[derive(Debug, Clone, Default)]
pub struct RedactOptions {
    /// Also replace IPv4 and IPv6 addresses.
    pub redact_ip: bool,
    /// Also replace these words (case-insensitive), e.g. a customer's name.
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

/// Every rule id (the manifest counts replacements under these ids; the README lists them).
pub const RULE_IDS: [&str; 13] = [
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
];

/// Replaces secrets with stable placeholders and counts them.
pub struct Redactor {
    rules: Vec<Rule>,
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
        for keyword in options.keywords.iter().filter(|k| !k.trim().is_empty()) {
            table.push((
                "keyword",
                format!("(?i){}", regex::escape(keyword.trim())),
                0,
            ));
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

    /// Redacts free text.
    pub fn text(&mut self, input: &str) -> String {
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

    /// Redacts a JSON tree in place: values under sensitive keys become placeholders whole,
    /// every other string is redacted as text. Keys are kept; the result is valid JSON.
    pub fn json(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.text(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
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
                        self.json(item);
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
