//! FHIR resources in text from outside, redacted by structure. A resource is a JSON object
//! with a `resourceType`; it may be a field of a JSON log line, nested at any depth, or JSON
//! text inside a string (escaped once, twice or three times), in JSON and plain lines alike.
//!
//! The rule is an allow-list over the FHIR R4 types ([`TABLE`], generated from the HL7
//! structure definitions by `scripts/fhir-types`): kept are the keys (element names),
//! `resourceType`, the `id` of a resource, `meta.versionId` and `meta.lastUpdated`, the values
//! of elements whose type is `code`, `id`, `boolean` or `canonical`, the `system` URIs (of
//! codings, identifiers, quantities…) and an extension's `url`, a reference that is only
//! `Type/id`, and `true`, `false` and `null` anywhere. Every other value becomes a
//! placeholder that names its kind by its FHIR type ([`KINDS`]); an element the table does not
//! know, and anything in it, is redacted.
//!
//! This module owns where resources are in a text, how their elements are typed and what
//! each value's kind is. The placeholders themselves (their numbers, their counts) are the
//! redactor's (`redact.rs`), which passes them in.
//!
//! The JSON is read token by token, without recursion, and written back the same: keys,
//! order and spacing are kept, values replaced in place, and a resource inside a string is
//! escaped again as it was. A resource cut short (a truncated line, a value PostgreSQL cut at
//! 64 bytes) is read as far as it goes: everything in it is still redacted.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The FHIR R4 type table: one type a line, `Name [resource] element:type …`.
const TABLE: &str = include_str!("fhir_types.txt");

/// The kinds of placeholder a resource's values become (each one a redaction rule id).
pub const KINDS: [&str; 11] = [
    "name",
    "address",
    "telecom",
    "identifier",
    "date",
    "narrative",
    "text",
    "attachment",
    "number",
    "reference",
    "value",
];

/// The keys of a log record: a JSON line's own root object with one of them is the record,
/// never a resource, whatever else it holds (Medplum logs `resourceType` as a field).
const LOG_RECORD_KEYS: [&str; 6] = ["level", "msg", "message", "time", "timestamp", "@timestamp"];

/// How many times its own length a text may be read while looking for its resources before
/// the rest of it is replaced whole: bounds the work a hostile line can cause.
const MAX_WORK: usize = 64;

/// The deepest escaping looked into: a resource inside a string inside a string inside a
/// string.
const MAX_LEVEL: usize = 3;

const KEY: &[u8] = b"resourceType";

/// A FHIR type of the table.
struct FhirType {
    resource: bool,
    elements: HashMap<&'static str, &'static str>,
}

fn types() -> &'static HashMap<&'static str, FhirType> {
    static TYPES: OnceLock<HashMap<&'static str, FhirType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        TABLE
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let mut words = line.split(' ');
                let name = words.next()?;
                let mut resource = false;
                let mut elements = HashMap::new();
                for word in words {
                    match word.split_once(':') {
                        Some((element, ty)) => {
                            elements.insert(element, ty);
                        }
                        None => resource |= word == "resource",
                    }
                }
                Some((name, FhirType { resource, elements }))
            })
            .collect()
    })
}

/// What becomes of a string, number or bare word at some place of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Keep,
    Replace(&'static str),
    /// `Reference.reference`: kept when it is only `Type/id`, else a `reference`.
    Reference,
}

/// What an object at some place of a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A resource, of a type the table knows or not.
    Resource(Option<&'static str>),
    /// A data type or backbone element of the table.
    Complex(&'static str),
    /// Where a resource of any type goes (`contained`, `Bundle.entry.resource`): the object's
    /// own `resourceType` says which.
    AnyResource,
    /// Not in the table: every value in it is redacted.
    Unknown,
}

/// One place of a resource: what an object there is, and what its values become.
#[derive(Debug, Clone, Copy)]
struct Field {
    shape: Shape,
    leaf: Leaf,
}

const UNKNOWN: Field = Field {
    shape: Shape::Unknown,
    leaf: Leaf::Replace("value"),
};

const KEPT: Field = Field {
    shape: Shape::Unknown,
    leaf: Leaf::Keep,
};

/// The field `key` of an object of `owner`'s shape.
fn field(owner: Shape, key: &str) -> Field {
    match owner {
        Shape::Resource(ty) => match (key, ty) {
            ("resourceType" | "id", _) => KEPT,
            (_, Some(ty)) => element(ty, key),
            // A resource the table does not know: its meta and narrative are still typed.
            ("meta", None) => element("DomainResource", key),
            ("text", None) => element("DomainResource", key),
            _ => UNKNOWN,
        },
        Shape::Complex(ty) => element(ty, key),
        Shape::AnyResource | Shape::Unknown => UNKNOWN,
    }
}

/// The element `key` of the table's type `owner`.
fn element(owner: &'static str, key: &str) -> Field {
    let ty = match key {
        "extension" | "modifierExtension" => "Extension",
        // The id and extensions of a primitive value (`_birthDate`).
        _ if key.starts_with('_') => "Element",
        // An element's own id (a resource's is kept above).
        "id" => "string",
        _ => match types().get(owner).and_then(|t| t.elements.get(key)) {
            Some(ty) => ty,
            None => return UNKNOWN,
        },
    };
    let shape = match ty {
        "Resource" => Shape::AnyResource,
        _ => match types().get(ty) {
            Some(t) if t.resource => Shape::Resource(Some(ty)),
            Some(_) => Shape::Complex(ty),
            None => Shape::Unknown,
        },
    };
    Field {
        shape,
        leaf: leaf(owner, key, ty),
    }
}

/// The kind of a primitive value: by where it is first (a name's parts, an identifier's
/// value), then by its FHIR type.
fn leaf(owner: &str, key: &str, ty: &str) -> Leaf {
    use Leaf::{Keep, Replace};
    match (owner, key) {
        ("HumanName", _) if ty == "string" => return Replace("name"),
        ("Address", _) if ty == "string" => return Replace("address"),
        ("ContactPoint", "value") => return Replace("telecom"),
        ("Identifier", "value") => return Replace("identifier"),
        ("Reference", "display") | ("Annotation", "authorString") => return Replace("name"),
        ("Reference", "reference") => return Leaf::Reference,
        ("Reference", "type") | ("Extension", "url") | (_, "system") => return Keep,
        ("Attachment", "data" | "url" | "hash") => return Replace("attachment"),
        ("Meta", "lastUpdated") => return Keep,
        _ => {}
    }
    match ty {
        "code" | "id" | "boolean" | "canonical" => Keep,
        "date" | "dateTime" | "instant" | "time" => Replace("date"),
        "integer" | "integer64" | "decimal" | "positiveInt" | "unsignedInt" => Replace("number"),
        "string" | "markdown" => Replace("text"),
        "xhtml" => Replace("narrative"),
        "base64Binary" => Replace("attachment"),
        _ => Replace("value"),
    }
}

/// A reference that says no more than the id a resource keeps: `Patient/123`,
/// `Patient/123/_history/2`, `urn:uuid:…`, `#contained`.
fn is_plain_reference(reference: &str) -> bool {
    let id = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if let Some(rest) = reference.strip_prefix("urn:uuid:") {
        return id(rest);
    }
    if let Some(rest) = reference.strip_prefix('#') {
        return rest.is_empty() || id(rest);
    }
    let parts: Vec<&str> = reference.split('/').collect();
    let ty = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    match parts.as_slice() {
        [t, i] => ty(t) && id(i),
        [t, i, "_history", v] => ty(t) && id(i) && id(v),
        _ => false,
    }
}

/// One JSON token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Open(u8),
    Close,
    Colon,
    Comma,
    /// A string, with its quotes; `closed` false when the text ends inside it.
    Str {
        closed: bool,
    },
    /// A number, `true`, `false`, `null`, or a word that is none of them.
    Bare,
}

/// The tokens of JSON text, with their byte ranges; lenient: anything is a token.
struct Tokens<'a> {
    text: &'a [u8],
    at: usize,
}

impl Iterator for Tokens<'_> {
    type Item = (Token, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        while self.at < text.len() && text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        let start = self.at;
        let token = match *text.get(start)? {
            b @ (b'{' | b'[') => {
                self.at += 1;
                Token::Open(b)
            }
            b'}' | b']' => {
                self.at += 1;
                Token::Close
            }
            b':' => {
                self.at += 1;
                Token::Colon
            }
            b',' => {
                self.at += 1;
                Token::Comma
            }
            b'"' => {
                let mut end = start + 1;
                while end < text.len() && text[end] != b'"' {
                    end += if text[end] == b'\\' { 2 } else { 1 };
                }
                let closed = end < text.len();
                self.at = if closed { end + 1 } else { text.len() };
                Token::Str { closed }
            }
            _ => {
                let mut end = start + 1;
                while end < text.len()
                    && !text[end].is_ascii_whitespace()
                    && !b"{}[]:,\"".contains(&text[end])
                {
                    end += 1;
                }
                self.at = end;
                Token::Bare
            }
        };
        Some((token, start, self.at))
    }
}

/// The value of a string token, unescaped (as far as it goes when cut short).
fn string_value(token: &str, closed: bool) -> String {
    if closed {
        if let Ok(value) = serde_json::from_str::<String>(token) {
            return value;
        }
    }
    let inner = token.strip_prefix('"').unwrap_or(token);
    inner.strip_suffix('"').unwrap_or(inner).to_string()
}

/// What one pass over an object found, before it is rewritten.
#[derive(Debug, Default)]
struct Survey {
    /// The `resourceType` of each object that has one, by the object's start.
    resource_types: HashMap<usize, String>,
    /// The end of the object at the start of the text (just past its `}`), when it closes.
    end: Option<usize>,
    /// The object at the start has a `resourceType` key of its own.
    is_resource: bool,
    /// The object at the start has a key of a log record ([`LOG_RECORD_KEYS`]).
    is_log_record: bool,
}

/// Reads the object at the start of `json` (which starts with `{`): its end, and which of
/// its objects are resources of which type.
fn survey(json: &str) -> Survey {
    struct Open {
        start: usize,
        key: Option<String>,
        at_key: bool,
        object: bool,
    }
    let mut survey = Survey::default();
    let mut stack: Vec<Open> = Vec::new();
    for (token, start, end) in (Tokens {
        text: json.as_bytes(),
        at: 0,
    }) {
        match token {
            Token::Open(b) => stack.push(Open {
                start,
                key: None,
                at_key: b == b'{',
                object: b == b'{',
            }),
            Token::Close => {
                stack.pop();
                if stack.is_empty() {
                    survey.end = Some(end);
                    break;
                }
            }
            Token::Colon => {
                if let Some(open) = stack.last_mut() {
                    open.at_key = false;
                }
            }
            Token::Comma => {
                if let Some(open) = stack.last_mut() {
                    open.at_key = open.object;
                    open.key = None;
                }
            }
            Token::Str { closed } => {
                let depth = stack.len();
                let Some(open) = stack.last_mut() else {
                    break;
                };
                let value = string_value(&json[start..end], closed);
                if open.object && open.at_key {
                    if depth == 1 {
                        survey.is_resource |= value == "resourceType";
                        survey.is_log_record |= LOG_RECORD_KEYS.contains(&value.as_str());
                    }
                    open.key = Some(value);
                } else if open.object && open.key.as_deref() == Some("resourceType") {
                    survey.resource_types.insert(open.start, value);
                }
            }
            Token::Bare => {
                if stack.is_empty() {
                    break;
                }
            }
        }
    }
    survey
}

/// The shape of the object starting at `start`: a resource when it has a `resourceType`,
/// else what its place says.
fn object_shape(place: Shape, start: usize, survey: &Survey) -> Shape {
    if let Some(ty) = survey.resource_types.get(&start) {
        let known = types()
            .get_key_value(ty.as_str())
            .filter(|(_, t)| t.resource)
            .map(|(name, _)| *name);
        return Shape::Resource(known);
    }
    match place {
        Shape::AnyResource => Shape::Resource(None),
        other => other,
    }
}

/// Rewrites the resource at the start of `json` (up to its end, or all of `json` when it is
/// cut short), every value not allowed replaced by `placeholder(kind, value)`.
fn rewrite(
    json: &str,
    survey: &Survey,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> String {
    enum Open {
        Object {
            shape: Shape,
            field: Option<Field>,
            at_key: bool,
        },
        Array(Field),
    }
    let root = Field {
        shape: Shape::AnyResource,
        leaf: Leaf::Replace("value"),
    };
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut stack: Vec<Open> = Vec::new();
    let mut replace =
        |out: &mut String, start: usize, end: usize, kind: &'static str, value: &str| {
            out.push_str(&json[copied..start]);
            out.push('"');
            out.push_str(&placeholder(kind, value));
            out.push('"');
            copied = end;
        };
    for (token, start, end) in (Tokens {
        text: json.as_bytes(),
        at: 0,
    }) {
        // The place of a value here.
        let place = match stack.last() {
            None => root,
            Some(Open::Array(field)) => *field,
            Some(Open::Object { field, .. }) => field.unwrap_or(UNKNOWN),
        };
        match token {
            Token::Open(b'{') => stack.push(Open::Object {
                shape: object_shape(place.shape, start, survey),
                field: None,
                at_key: true,
            }),
            Token::Open(_) => stack.push(Open::Array(place)),
            Token::Close => {
                stack.pop();
                if stack.is_empty() {
                    break;
                }
            }
            Token::Colon => {
                if let Some(Open::Object { at_key, .. }) = stack.last_mut() {
                    *at_key = false;
                }
            }
            Token::Comma => {
                if let Some(Open::Object { field, at_key, .. }) = stack.last_mut() {
                    *at_key = true;
                    *field = None;
                }
            }
            Token::Str { closed } => {
                let value = string_value(&json[start..end], closed);
                if let Some(Open::Object {
                    shape,
                    field,
                    at_key,
                }) = stack.last_mut()
                {
                    if *at_key {
                        *field = Some(self::field(*shape, &value));
                        *at_key = false;
                        continue;
                    }
                }
                match place.leaf {
                    Leaf::Keep => {}
                    Leaf::Reference if is_plain_reference(&value) => {}
                    Leaf::Reference => replace(&mut out, start, end, "reference", &value),
                    Leaf::Replace(kind) => replace(&mut out, start, end, kind, &value),
                }
            }
            Token::Bare => {
                let word = &json[start..end];
                if matches!(word, "true" | "false" | "null") {
                    continue;
                }
                match place.leaf {
                    Leaf::Keep => {}
                    Leaf::Reference => replace(&mut out, start, end, "reference", word),
                    Leaf::Replace(kind) => replace(&mut out, start, end, kind, word),
                }
            }
        }
    }
    let end = survey.end.unwrap_or(json.len()).max(copied);
    out.push_str(&json[copied..end]);
    out
}

/// Redacts one resource given as JSON text (a whole object with a `resourceType`).
pub fn redact_resource(
    json: &str,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> String {
    let survey = survey(json);
    rewrite(json, &survey, placeholder)
}

/// The escaping level of the `resourceType` at `at` when it is a key: 0 for `"resourceType":`,
/// 1 for `\"resourceType\":`, 2 for `\\\"resourceType\\\":`, …; `None` when it is a word of
/// a message.
fn key_level(text: &[u8], at: usize) -> Option<usize> {
    if at == 0 || text[at - 1] != b'"' {
        return None;
    }
    let slashes = text[..at - 1]
        .iter()
        .rev()
        .take_while(|b| **b == b'\\')
        .count();
    let level = (0..=MAX_LEVEL).find(|level| (1 << level) - 1 == slashes)?;
    let after = &text[at + KEY.len()..];
    let close = after.get(..=slashes)?;
    if !close[..slashes].iter().all(|b| *b == b'\\') || close[slashes] != b'"' {
        return None;
    }
    let rest = &after[slashes + 1..];
    let colon = rest.iter().position(|b| *b != b' ')?;
    (rest[colon] == b':').then_some(level)
}

/// One level of JSON string escaping undone, from the start of `text` to its first unescaped
/// quote (the end of the string it is in) or its end; with, for each byte of the result and
/// for its end, the offset in `text` it came from.
fn unescape(text: &str) -> (String, Vec<usize>) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                let (c, len) = match bytes.get(i + 1) {
                    Some(b'"') => ('"', 2),
                    Some(b'\\') => ('\\', 2),
                    Some(b'/') => ('/', 2),
                    Some(b'b') => ('\u{8}', 2),
                    Some(b'f') => ('\u{c}', 2),
                    Some(b'n') => ('\n', 2),
                    Some(b'r') => ('\r', 2),
                    Some(b't') => ('\t', 2),
                    Some(b'u') => unicode_escape(bytes, i),
                    _ => ('\\', 1),
                };
                out.push(c);
                map.extend(std::iter::repeat_n(i, c.len_utf8()));
                i += len;
            }
            _ => {
                let run = bytes[i..]
                    .iter()
                    .position(|b| *b == b'"' || *b == b'\\')
                    .unwrap_or(bytes.len() - i);
                out.push_str(&text[i..i + run]);
                map.extend(i..i + run);
                i += run;
            }
        }
    }
    map.push(i);
    (out, map)
}

/// The character of a `\uXXXX` escape at `at` (a surrogate pair read whole), and its length.
fn unicode_escape(bytes: &[u8], at: usize) -> (char, usize) {
    let hex = |from: usize| {
        bytes
            .get(from..from + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(high) = hex(at + 2) else {
        return ('\\', 1);
    };
    if (0xD800..0xDC00).contains(&high) && bytes.get(at + 6..at + 8) == Some(b"\\u") {
        if let Some(low @ 0xDC00..0xE000) = hex(at + 8) {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return (char::from_u32(c).unwrap_or('\u{fffd}'), 12);
        }
    }
    (char::from_u32(high).unwrap_or('\u{fffd}'), 6)
}

/// `text` escaped as the content of a JSON string.
fn escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Text at some escaping level, undone down to plain JSON, with where each byte came from.
struct Unescaped<'a> {
    json: std::borrow::Cow<'a, str>,
    /// For each byte of `json` and its end, the offset in the original text; `None` at level
    /// 0, where they are the same.
    map: Option<Vec<usize>>,
}

impl Unescaped<'_> {
    fn new(text: &str, level: usize) -> Unescaped<'_> {
        if level == 0 {
            return Unescaped {
                json: text.into(),
                map: None,
            };
        }
        let (mut json, mut map) = unescape(text);
        for _ in 1..level {
            let (inner, inner_map) = unescape(&json);
            map = inner_map.iter().map(|i| map[*i]).collect();
            json = inner;
        }
        Unescaped {
            json: json.into(),
            map: Some(map),
        }
    }

    /// The offset in the original text of offset `at` of `json`.
    fn original(&self, at: usize) -> usize {
        self.map.as_ref().map_or(at, |map| map[at])
    }
}

/// Where a resource is in a text: from its `{` to just past its `}` (or to the end of the
/// string or text it is cut short in), and at which escaping level.
#[derive(Debug, Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
    level: usize,
}

/// The escaping level at which a quote preceded by `slashes` backslashes opens or closes a
/// string: 0 for `"` (or `\\"`), 1 for `\"`, 2 for `\\\"`, …; `None` past [`MAX_LEVEL`].
fn quote_level(slashes: usize) -> Option<usize> {
    (0..=MAX_LEVEL).find(|level| slashes % (2 << level) == (1 << level) - 1)
}

/// The `{` of the object of which the key whose opening quote starts at `quote` is a member,
/// at escaping `level`: read backwards over the members before it, strings of that level
/// skipped whole. `None` when there is none (the key is in no object there, or the string the
/// text at this level is in starts first). Counts the bytes read in `spent`.
fn enclosing_object(text: &[u8], quote: usize, level: usize, spent: &mut usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = quote;
    while i > 0 {
        i -= 1;
        *spent += 1;
        match text[i] {
            b'"' => {
                let slashes = text[..i].iter().rev().take_while(|b| **b == b'\\').count();
                match quote_level(slashes) {
                    Some(l) if l == level => in_string = !in_string,
                    Some(l) if l < level => return None,
                    _ => {}
                }
                i -= slashes;
            }
            _ if in_string => {}
            b'}' | b']' => depth += 1,
            b @ (b'{' | b'[') => {
                if depth == 0 {
                    return (b == b'{').then_some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// Redacts every FHIR resource in `text`, at any escaping level; `None` when there is none.
/// `json_line`: `text` is a JSON log line, whose own root object is the log record, not a
/// resource, when it has a record's keys.
pub fn redact_embedded(
    text: &str,
    json_line: bool,
    placeholder: &mut dyn FnMut(&'static str, &str) -> String,
) -> Option<String> {
    let bytes = text.as_bytes();
    let mut keys = memchr::memmem::find_iter(bytes, KEY).peekable();
    keys.peek()?;
    let root = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let mut found: Vec<Found> = Vec::new();
    let mut not_resources: Vec<usize> = Vec::new();
    // The work one text may cause; past it, the rest of the text is replaced whole.
    let budget = MAX_WORK * bytes.len().max(1024);
    let mut spent = 0;
    let mut cut = None;
    for at in keys {
        if found.iter().any(|f| f.start < at && at < f.end) {
            continue; // a resource inside one already found: rewritten with it
        }
        let Some(level) = key_level(bytes, at) else {
            continue;
        };
        let quote = at - (1 << level);
        if spent > budget {
            cut = Some(quote);
            break;
        }
        let Some(open) = enclosing_object(bytes, quote, level, &mut spent) else {
            continue;
        };
        if not_resources.contains(&open) || found.iter().any(|f| f.start == open) {
            continue;
        }
        let unescaped = Unescaped::new(&text[open..], level);
        let survey = survey(&unescaped.json);
        let end = survey.end.unwrap_or(unescaped.json.len());
        spent += end;
        let record = json_line && level == 0 && Some(open) == root && survey.is_log_record;
        if !survey.is_resource || record {
            not_resources.push(open);
            continue;
        }
        found.push(Found {
            start: open,
            end: open + unescaped.original(end),
            level,
        });
    }
    if found.is_empty() && cut.is_none() {
        return None;
    }
    // Outermost first: a resource found inside a later-found one is rewritten with it.
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for f in found {
        if f.start < copied || cut.is_some_and(|cut| f.end > cut) {
            continue;
        }
        let unescaped = Unescaped::new(&text[f.start..], f.level);
        let survey = survey(&unescaped.json);
        let end = survey.end.unwrap_or(unescaped.json.len());
        let redacted = rewrite(&unescaped.json[..end], &survey, placeholder);
        let redacted = (0..f.level).fold(redacted, |text, _| escape(&text));
        out.push_str(&text[copied..f.start]);
        out.push_str(&redacted);
        copied = f.end;
    }
    match cut {
        Some(cut) if cut >= copied => {
            out.push_str(&text[copied..cut]);
            out.push_str(&placeholder("value", &text[cut..]));
        }
        _ => out.push_str(&text[copied..]),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Placeholders numbered per kind and value, as the redactor numbers them.
    fn numbering() -> impl FnMut(&'static str, &str) -> String {
        let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
        move |kind, value| {
            let next = seen.keys().filter(|(k, _)| *k == kind).count() + 1;
            let n = *seen.entry((kind, value.to_string())).or_insert(next);
            format!("[{kind}-{n}]")
        }
    }

    fn redact(resource: &str) -> Value {
        let text = redact_resource(resource, &mut numbering());
        serde_json::from_str(&text).unwrap()
    }

    /// The kind of a placeholder (`name` of `[name-3]`), or the value itself.
    fn kind(value: &Value) -> String {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        Regex::new(r"^\[([a-z-]+)-\d+\]$")
            .unwrap()
            .captures(&text)
            .map_or(text.clone(), |c| c[1].to_string())
    }

    const HOMER: &str = r#"{"resourceType":"Patient","id":"123","meta":{"versionId":"2","lastUpdated":"2020-01-02T00:00:00.000Z","author":{"reference":"Practitioner/124","display":"Alice Smith"}},"identifier":[{"system":"abc","value":"MRN-1234"}],"active":true,"birthDate":"1956-05-12","name":[{"given":["Homer","Jay"],"family":"Simpson"}],"gender":"male","telecom":[{"system":"phone","use":"home","value":"555-7334"},{"system":"email","value":"chunkylover53@aol.com"}],"address":[{"use":"home","line":["742 Evergreen Terrace"],"city":"Springfield","state":"IL","postalCode":"12345"}],"photo":[{"contentType":"image/png","url":"https://example.com/homer.png"}],"text":{"status":"generated","div":"<div>Homer Simpson</div>"},"multipleBirthInteger":2,"extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"M"}],"_birthDate":{"extension":[{"url":"http://example.com/time","valueTime":"10:30:00"}]}}"#;

    #[test]
    fn a_patient_keeps_its_structure_and_codes_and_loses_every_identifying_value() {
        let out = redact(HOMER);
        assert_eq!(out["resourceType"], "Patient");
        assert_eq!(out["id"], "123");
        assert_eq!(out["meta"]["versionId"], "2");
        assert_eq!(out["meta"]["lastUpdated"], "2020-01-02T00:00:00.000Z");
        assert_eq!(out["meta"]["author"]["reference"], "Practitioner/124");
        assert_eq!(out["meta"]["author"]["display"], "[name-1]");
        assert_eq!(out["identifier"][0]["system"], "abc");
        assert_eq!(out["identifier"][0]["value"], "[identifier-1]");
        assert_eq!(out["active"], true);
        assert_eq!(out["gender"], "male");
        assert_eq!(out["birthDate"], "[date-1]");
        assert_eq!(
            out["name"][0],
            json!({"given": ["[name-2]", "[name-3]"], "family": "[name-4]"})
        );
        assert_eq!(out["telecom"][0]["system"], "phone");
        assert_eq!(out["telecom"][0]["use"], "home");
        assert_eq!(out["telecom"][0]["value"], "[telecom-1]");
        assert_eq!(out["telecom"][1]["value"], "[telecom-2]");
        assert_eq!(out["address"][0]["use"], "home");
        for part in ["line", "city", "state", "postalCode"] {
            assert!(
                out["address"][0][part].to_string().contains("[address-"),
                "{part}: {out}"
            );
        }
        assert_eq!(out["photo"][0]["contentType"], "image/png");
        assert_eq!(out["photo"][0]["url"], "[attachment-1]");
        assert_eq!(out["text"]["status"], "generated");
        assert_eq!(out["text"]["div"], "[narrative-1]");
        assert_eq!(out["multipleBirthInteger"], "[number-1]");
        assert_eq!(out["extension"][0]["valueCode"], "M");
        assert_eq!(
            out["extension"][0]["url"],
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
        );
        assert_eq!(out["_birthDate"]["extension"][0]["valueTime"], "[date-2]");
        // The keys, their order and the text's spacing are the input's.
        let text = redact_resource(HOMER, &mut numbering());
        let keys = |t: &str| {
            Regex::new(r#""([A-Za-z_]+)":"#)
                .unwrap()
                .captures_iter(t)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&text), keys(HOMER));
        for leaked in [
            "Homer",
            "Simpson",
            "1956",
            "7334",
            "chunky",
            "Evergreen",
            "Springfield",
            "12345",
            "MRN",
            "Alice",
        ] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
    }

    use regex::Regex;

    #[test]
    fn unknown_elements_and_resources_are_redacted_whole_and_nested_resources_by_their_type() {
        let bundle = r#"{
            "resourceType": "Bundle", "type": "searchset", "total": 2,
            "link": [{"relation": "self", "url": "Patient?name=Simpson"}],
            "entry": [
                {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation", "id": "o1",
                  "status": "final", "subject": {"reference": "Patient?identifier=abc|MRN-77"},
                  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "HR"},
                  "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
                  "effectiveDateTime": "2024-01-01T10:00:00Z", "note": [{"text": "patient anxious"}]}},
                {"resource": {"resourceType": "MadeUpThing", "id": "m1", "secret": {"deep": ["Homer", 7]},
                  "meta": {"versionId": "3"}}}
            ],
            "madeUp": "Homer"
        }"#;
        let out = redact(bundle);
        assert_eq!(out["type"], "searchset");
        assert_eq!(out["total"], "[number-1]");
        assert_eq!(out["link"][0]["url"], "[value-1]");
        let o = &out["entry"][0]["resource"];
        assert_eq!((&o["id"], &o["status"]), (&json!("o1"), &json!("final")));
        assert_eq!(o["subject"]["reference"], "[reference-1]");
        assert_eq!(o["code"]["coding"][0]["code"], "8867-4");
        assert_eq!(o["code"]["coding"][0]["system"], "http://loinc.org");
        assert_eq!(kind(&o["code"]["coding"][0]["display"]), "text");
        assert_eq!(kind(&out["link"][0]["relation"]), "text");
        assert_eq!(o["valueQuantity"]["value"], "[number-2]");
        assert_eq!(o["valueQuantity"]["code"], "/min");
        assert_eq!(o["effectiveDateTime"], "[date-1]");
        assert_eq!(kind(&o["note"][0]["text"]), "text");
        assert_eq!(kind(&o["valueQuantity"]["unit"]), "text");
        let m = &out["entry"][1]["resource"];
        assert_eq!(
            (&m["id"], &m["meta"]["versionId"]),
            (&json!("m1"), &json!("3"))
        );
        assert_eq!(out["entry"][0]["fullUrl"], "[value-2]");
        assert_eq!(m["secret"]["deep"], json!(["[value-3]", "[value-4]"]));
        // The same value, the same placeholder.
        assert_eq!(out["madeUp"], "[value-3]");
    }

    fn redact_in(text: &str, json_line: bool) -> String {
        redact_embedded(text, json_line, &mut numbering()).unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn resources_are_found_as_fields_nested_and_escaped_once_twice_and_in_plain_lines() {
        let homer: Value = serde_json::from_str(HOMER).unwrap();
        let once = serde_json::to_string(HOMER).unwrap();
        let twice = serde_json::to_string(&format!(
            "{{\"message\":\"bad: {}\"}}",
            &once[1..once.len() - 1]
        ))
        .unwrap();
        let lines = [
            json!({"level": "error", "msg": "Post-deploy migration threw an error", "resource": homer}).to_string(),
            json!({"level": "warn", "msg": "Reindex iteration failed, retrying", "resourceType": "Patient",
                   "error": {"cause": {"batch": [{"n": 1}, homer]}}}).to_string(),
            format!(r#"{{"level":"error","msg":"Post-deploy migration threw an error","err":"Error: invalid {} in batch"}}"#, &once[1..once.len() - 1]),
            format!(r#"{{"level":"error","msg":"Post-deploy migration threw an error","err":{twice}}}"#),
        ];
        for line in &lines {
            let out = redact_in(line, true);
            let parsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(
                parsed["level"],
                serde_json::from_str::<Value>(line).unwrap()["level"]
            );
            assert!(
                out.contains("Post-deploy migration threw an error")
                    || out.contains("Reindex iteration failed")
            );
            for leaked in ["Homer", "Simpson", "1956", "Evergreen", "MRN-1234"] {
                assert!(!out.contains(leaked), "{leaked} in {out}");
            }
            assert!(out.contains("[name-"), "{out}");
        }
        // The record's own resourceType field stays.
        let out: Value = serde_json::from_str(&redact_in(&lines[1], true)).unwrap();
        assert_eq!(out["resourceType"], "Patient");
        assert_eq!(out["msg"], "Reindex iteration failed, retrying");
        // Escaped text is escaped again, as it was: the message reads back as a resource.
        let out: Value = serde_json::from_str(&redact_in(&lines[2], true)).unwrap();
        let err = out["err"].as_str().unwrap();
        let inner: Value = serde_json::from_str(
            err.strip_prefix("Error: invalid ")
                .unwrap()
                .strip_suffix(" in batch")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(inner["birthDate"], "[date-1]");
        let out: Value = serde_json::from_str(&redact_in(&lines[3], true)).unwrap();
        let message: Value = serde_json::from_str(out["err"].as_str().unwrap()).unwrap();
        let inner: Value = serde_json::from_str(
            message["message"]
                .as_str()
                .unwrap()
                .strip_prefix("bad: ")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(inner["name"][0]["family"], "[name-4]");

        // Plain lines: raw and escaped.
        for line in [
            format!(
                "2026-03-01 10:07:00 ERROR Post-deploy migration threw an error: {HOMER} (batch 3)"
            ),
            format!("2026-03-01 10:07:00 ERROR failed {once}"),
        ] {
            let out = redact_in(&line, false);
            assert!(out.starts_with("2026-03-01 10:07:00 ERROR "), "{out}");
            for leaked in ["Homer", "Simpson", "1956", "Evergreen"] {
                assert!(!out.contains(leaked), "{leaked} in {out}");
            }
        }
        let out = redact_in(&format!("ERROR at {HOMER} (batch 3)"), false);
        assert!(out.ends_with("} (batch 3)"), "{out}");
    }

    #[test]
    fn a_resource_cut_short_is_redacted_as_far_as_it_goes() {
        let cut = &HOMER[..HOMER.find("Simp").unwrap() + 2];
        let line = format!("ERROR Failing row contains (123, {cut}");
        let out = redact_in(&line, false);
        assert!(!out.contains("Homer") && !out.contains("Si"), "{out}");
        assert!(out.starts_with("ERROR Failing row contains (123, {\"resourceType\":\"Patient\""));
        // Escaped inside a JSON line that closes.
        let escaped = serde_json::to_string(&line).unwrap();
        let json_line = format!(r#"{{"level":"error","detail":{escaped},"n":1}}"#);
        let out = redact_in(&json_line, true);
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["n"], 1);
        assert!(!out.contains("Homer"), "{out}");
    }

    #[test]
    fn words_that_are_not_keys_and_records_are_left_alone() {
        for text in [
            r#"{"level":"info","msg":"Reindex completed for resourceType","resourceType":"Observation","count":5}"#,
            "Reindex completed for resourceType Patient",
            r#"{"msg":"x","resourceType":"Patient","name":[{"family":"Simpson"}]}"#,
        ] {
            assert_eq!(
                redact_embedded(text, true, &mut numbering()),
                None,
                "{text}"
            );
        }
        // Not a log line: the same object is a resource.
        let out = redact_in(
            r#"{"resourceType":"Patient","name":[{"family":"Simpson"}]}"#,
            false,
        );
        assert!(!out.contains("Simpson"));
    }

    #[test]
    fn a_hostile_text_is_bounded() {
        // Thousands of keys of the record itself: each read back to the root, until the work
        // allowed is spent and the rest is replaced whole.
        let hostile = format!(
            r#"{{"level":"error","msg":"x"{}}}"#,
            r#","resourceType":"x""#.repeat(3000)
        );
        let started = std::time::Instant::now();
        let out = redact_in(&hostile, true);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(out.starts_with(r#"{"level":"error","msg":"x","resourceType":"x""#));
        assert!(out.len() < hostile.len());
        // Thousands of resources: each rewritten once.
        let many = r#"{"a":{"b":1},"resourceType":"x"} "#.repeat(2000);
        let out = redact_in(&format!("{}{many}", "{".repeat(100)), false);
        assert!(!out.contains(r#""b":1"#));
        assert_eq!(out.matches("[value-1]").count(), 2000);
        // Nesting too deep for any recursion.
        let deep = format!(
            r#"{{"resourceType":"Patient","contained":{}"#,
            "[".repeat(100_000)
        );
        assert!(redact_in(&deep, false).len() <= deep.len());
    }

    #[test]
    fn plain_references_are_kept_and_others_not() {
        for kept in [
            "Patient/123",
            "Patient/a-b.c/_history/2",
            "urn:uuid:0f8e7a52-4cde",
            "#p1",
        ] {
            assert!(is_plain_reference(kept), "{kept}");
        }
        for replaced in [
            "Patient?identifier=abc|123",
            "https://x.org/Patient/1",
            "Patient/Homer Simpson",
            "Homer",
        ] {
            assert!(!is_plain_reference(replaced), "{replaced}");
        }
    }

    #[test]
    fn the_table_types_what_the_rules_name() {
        let t = types();
        assert!(t["Patient"].resource && !t["HumanName"].resource);
        assert_eq!(t["Patient"].elements["birthDate"], "date");
        assert_eq!(t["Patient"].elements["deceasedDateTime"], "dateTime");
        assert_eq!(t["Patient"].elements["contact"], "Patient.contact");
        assert_eq!(t["Patient.contact"].elements["name"], "HumanName");
        assert_eq!(t["Bundle.entry"].elements["resource"], "Resource");
        assert_eq!(
            t["Questionnaire.item"].elements["item"],
            "Questionnaire.item"
        );
        assert_eq!(t["Meta"].elements["lastUpdated"], "instant");
        assert_eq!(t["Narrative"].elements["div"], "xhtml");
        assert!(t["AsyncJob"].resource);
        for (owner, key) in [
            ("HumanName", "family"),
            ("Address", "line"),
            ("ContactPoint", "value"),
            ("Identifier", "value"),
            ("Reference", "display"),
            ("Attachment", "data"),
            ("Annotation", "authorString"),
        ] {
            assert!(t[owner].elements.contains_key(key), "{owner}.{key}");
        }
    }
}
