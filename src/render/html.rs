//! The incident report: one self-contained HTML page (`medmig report`, and `report.html` in
//! every bundle) for a post-mortem — verdicts and versions at a glance, the timeline as a
//! picture (`svg_timeline.rs`), findings, recovery steps and the diagnostics that matter.
//!
//! This module owns the page: its markup, its small inline style and script, and [`escape`],
//! the one function every text from outside passes through on its way into HTML, an
//! attribute or SVG. The page loads nothing: a Content-Security-Policy allows no source but
//! the page's own style and script, by their SHA-256, and `data:` images. It reads without
//! its script (the details are in `<title>` elements and in tables); the script only shows the
//! detail of a focused or hovered bar or mark beside it. What the page says comes from
//! [`Incident`], assembled by `commands/report.rs` from what the bundle holds: nothing here
//! computes a state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::svg_timeline::{self, iso, BarState, JobSpan, Lane, Mark};
use crate::analyze::migrations::StatusReport;
use crate::analyze::recover::Step;
use crate::analyze::rollback::{Outcome, RollbackReport, Verdict};
use crate::analyze::Severity;
use crate::bundle::archive::BundleManifest;
use crate::bundle::contents::BundledEvent;
use crate::snapshot::Snapshot;
use crate::text::needs_escape;

/// The events listed in the table under the picture; the rest are counted.
pub const EVENT_ROWS_MAX: usize = 2000;

/// `text` for HTML: `&`, `<`, `>`, `"` and `'` as entities (so it is safe in text, in a quoted
/// attribute and in SVG alike), and every control character but newline and tab, the line
/// separators and the bidirectional overrides written visibly as [`crate::text::escape_controls`]
/// writes them (`\x1b`, `\r`, `\u{202e}`): none can reorder or hide what the page shows.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c <= '\u{1f}' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// How bad the headline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Bad,
    Warn,
    Ok,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Bad => "bad",
            Tone::Warn => "warn",
            Tone::Ok => "ok",
        }
    }
}

/// The rollback window, as the rollback-check machinery judged it.
#[derive(Debug, Clone)]
pub enum RollbackWindow {
    /// Checked against `to`, the latest patch of the minor before the deployed one.
    Checked(RollbackReport),
    /// Not checked, and why (no snapshot, the deployed release unknown, …).
    Undetermined(String),
}

/// What the config says about deferring post-deploy migrations.
#[derive(Debug, Clone, Default)]
pub struct Deferral {
    /// Whether the server defers them; `None` when not known.
    pub defers: Option<bool>,
    /// What that means, in a sentence.
    pub meaning: String,
    /// Each switch and its raw value.
    pub switches: Vec<(String, String)>,
}

/// A server start the logs show.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub at: chrono::DateTime<chrono::Utc>,
    pub release: String,
}

/// Everything the report shows.
pub struct Incident<'a> {
    pub manifest: &'a BundleManifest,
    pub snapshot: Option<&'a Snapshot>,
    pub status: Option<&'a StatusReport>,
    /// The headline verdict, and how bad it is.
    pub headline: (Tone, String),
    pub rollback: RollbackWindow,
    /// The deployed release and how it is known, when it is.
    pub deployed: Option<(String, String)>,
    pub deferral: Deferral,
    pub deployments: Vec<Deployment>,
    /// The recovery steps, or why there are none.
    pub recovery: Result<Vec<Step>, String>,
    pub spans: Vec<JobSpan>,
    pub marks: Vec<Mark>,
    pub events: &'a [BundledEvent],
    pub diagnostics: &'a BTreeMap<String, Value>,
    pub log_totals: Option<&'a Value>,
}

const STYLE: &str = r#"
:root{--fg:#1a202c;--muted:#4a5568;--line:#e2e8f0;--bad:#c53030;--warn:#b7791f;--ok:#2f855a;--info:#2b6cb0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#f4f6f9}
header{background:#1a202c;color:#fff;padding:20px 32px 18px}
header h1{margin:0 0 4px;font-size:21px;font-weight:650}
header .meta{color:#cbd5e0;font-size:13px;margin:0}
nav{margin-top:10px;font-size:13px}
nav a{color:#bee3f8;margin-right:14px}
.verdict{margin:14px 0 0;padding:10px 14px;border-radius:6px;font-weight:600;font-size:16px;border-left:6px solid;background:#fff}
.verdict.bad{color:#742a2a;border-color:var(--bad)}
.verdict.warn{color:#744210;border-color:var(--warn)}
.verdict.ok{color:#22543d;border-color:var(--ok)}
.verdict small{display:block;font-weight:400;font-size:13px;color:var(--muted);margin-top:2px}
main{max-width:1280px;margin:0 auto;padding:8px 32px 32px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:14px;margin:18px 0 8px}
p{margin:6px 0}
.muted{color:var(--muted)}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px;margin:0}
dl.facts div{border:1px solid var(--line);border-radius:6px;padding:8px 10px}
dl.facts div.wide{grid-column:1/-1}
dt{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
dd small{display:block;font-weight:400;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#edf2f7;font-weight:600;white-space:nowrap}
td.nowrap{white-space:nowrap}
td.msg{overflow-wrap:anywhere;min-width:16em}
.scroll{overflow-x:auto}
code,pre,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f7fafc;border:1px solid var(--line);border-radius:4px;padding:8px;margin:6px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;font-weight:650;border:1px solid;white-space:nowrap}
.badge.bad{color:#9b2c2c;background:#fff5f5}
.badge.warn{color:#975a16;background:#fffff0}
.badge.ok{color:#276749;background:#f0fff4}
.badge.info{color:#2c5282;background:#ebf8ff}
ol.steps{padding-left:22px}
ol.steps li{margin:0 0 14px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:4px 0 10px;padding:0;list-style:none;font-size:13px}
.legend svg{vertical-align:-3px;margin-right:4px}
#timeline-chart{display:block;min-width:760px}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#2d3748}
.tick{stroke:#edf2f7}
.tick-label{fill:#718096}
.lane{stroke:#cbd5e0;stroke-dasharray:2 3}
.lane-label,.row-label{font-weight:600}
.seg{stroke:#1a202c;stroke-width:.6}
.seg-queued{fill:url(#pat-queued)}
.seg-running{fill:#3182ce}
.seg-completed{fill:#38a169}
.seg-failed{fill:url(#pat-failed)}
.seg-cancelled{fill:url(#pat-cancelled)}
.state-label{font-weight:700}
.state-text-failed{fill:#c53030}
.state-text-completed{fill:#276749}
.state-text-running{fill:#2b6cb0}
.state-text-queued{fill:#975a16}
.state-text-cancelled{fill:#4a5568}
.job-bar,.log-mark{cursor:pointer;outline:none}
.job-bar:hover .seg,.job-bar:focus .seg{stroke-width:2.5}
.job-bar:hover .hit,.job-bar:focus .hit{fill:#ebf4ff}
.job-bar:focus .row-label{text-decoration:underline}
.mark-shape{stroke:#1a202c;stroke-width:1}
.lane-deploy .mark-shape{fill:#6b46c1}
.deploy-line{stroke:#6b46c1;stroke-width:1.5;stroke-dasharray:5 4}
.deploy-label{fill:#553c9a;font-weight:700}
.lane-pre-deploy .mark-shape{fill:#319795}
.lane-error .mark-shape{fill:#e53e3e}
.lane-queue .mark-shape{fill:#dd6b20}
.log-mark:hover .mark-shape,.log-mark:focus .mark-shape{stroke-width:3}
#tip{position:fixed;z-index:10;max-width:440px;background:#1a202c;color:#fff;padding:8px 10px;border-radius:6px;font-size:12px;line-height:1.4;white-space:pre-wrap;pointer-events:none;box-shadow:0 4px 14px rgba(0,0,0,.25)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
@media (max-width:720px){header,main{padding-left:12px;padding-right:12px}section{padding:12px}}
@media print{body{background:#fff;font-size:12px}header{background:#fff;color:#000;border-bottom:2px solid #000;padding:0 0 8px}header .meta{color:#333}nav,#tip{display:none}main{padding:0;max-width:none}section{border:none;padding:0;margin:14px 0;break-inside:auto}h2{break-after:avoid}.scroll{overflow:visible}#timeline-chart{min-width:0}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"#;

const SCRIPT: &str = r#"
(function(){
var tip=document.getElementById('tip');
if(!tip)return;
function show(el){
var t=el.querySelector('title');
tip.textContent=t?t.textContent:'';
tip.hidden=false;
var r=el.getBoundingClientRect();
var x=Math.max(8,Math.min(r.left,window.innerWidth-tip.offsetWidth-8));
var y=r.bottom+8;
if(y+tip.offsetHeight>window.innerHeight-8){y=Math.max(8,r.top-tip.offsetHeight-8);}
tip.style.left=x+'px';tip.style.top=y+'px';
}
function hide(){tip.hidden=true;}
document.querySelectorAll('[data-detail]').forEach(function(el){
el.addEventListener('mouseenter',function(){show(el);});
el.addEventListener('mouseleave',hide);
el.addEventListener('focus',function(){show(el);});
el.addEventListener('blur',hide);
});
document.addEventListener('keydown',function(e){if(e.key==='Escape'){hide();}});
})();
"#;

/// `'sha256-…'` of an inline style or script, for the Content-Security-Policy.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Content-Security-Policy of the page: nothing but its own style and script.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
}

/// Writes the whole page.
pub fn report(out: &mut impl Write, incident: &Incident<'_>) -> io::Result<()> {
    let mut page = String::with_capacity(64 << 10);
    head(&mut page, incident);
    summary(&mut page, incident);
    timeline(&mut page, incident)?;
    findings(&mut page, incident);
    recovery(&mut page, incident);
    diagnostics(&mut page, incident);
    let _ = write!(
        page,
        "</main>\n<footer>Made by medmig {} from the support bundle's redacted files only. Times are UTC.</footer>\n<div id=\"tip\" role=\"tooltip\" hidden></div>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(env!("CARGO_PKG_VERSION"))
    );
    out.write_all(page.as_bytes())?;
    out.flush()
}

fn head(page: &mut String, incident: &Incident<'_>) {
    let manifest = incident.manifest;
    let database = incident
        .snapshot
        .map(|s| {
            format!(
                "database {} on {}:{}, snapshot taken {}",
                s.source.database,
                s.source.host,
                s.source.port,
                iso(s.taken_at)
            )
        })
        .unwrap_or_else(|| "no database was read (--no-db)".into());
    let (tone, headline) = &incident.headline;
    let window = match &incident.rollback {
        RollbackWindow::Checked(report) => format!(
            "Rollback window to {}: {}",
            report.to,
            window_word(report.verdict)
        ),
        RollbackWindow::Undetermined(_) => "Rollback window: not determined".into(),
    };
    let _ = write!(
        page,
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Medplum migration incident report</h1>
<p class="meta">Support bundle made {created} by medmig {medmig}; {database}.</p>
<div class="verdict {tone}" role="status">{headline}<small>{window}</small></div>
<nav aria-label="Sections"><a href="#summary">Summary</a><a href="#timeline">Timeline</a><a href="#findings">Findings</a><a href="#recovery">Recovery</a><a href="#diagnostics">Diagnostics</a></nav>
</header>
<main>
"##,
        csp = escape(&content_security_policy()),
        title = escape(&format!("medmig incident report: {headline}")),
        created = escape(&iso(manifest.created_at)),
        medmig = escape(&manifest.medmig_version),
        database = escape(&database),
        tone = tone.class(),
        headline = escape(headline),
        window = escape(&window),
    );
}

fn window_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Safe => "OPEN (SAFE)",
        Verdict::Unsafe => "CLOSED (UNSAFE)",
        Verdict::Unknown => "UNKNOWN",
    }
}

fn badge(tone: &str, text: &str) -> String {
    format!(r#"<span class="badge {tone}">{}</span>"#, escape(text))
}

fn fact(page: &mut String, label: &str, value: &str, note: &str) {
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("<small>{}</small>", escape(note))
    };
    let _ = writeln!(
        page,
        "<div><dt>{}</dt><dd>{}{note}</dd></div>",
        escape(label),
        escape(value)
    );
}

fn summary(page: &mut String, incident: &Incident<'_>) {
    page.push_str("<section id=\"summary\" aria-labelledby=\"summary-h\">\n<h2 id=\"summary-h\">Summary</h2>\n<dl class=\"facts\">\n");
    match incident.status {
        Some(status) => {
            let pre = status
                .pre_deploy
                .version
                .map_or("not read".into(), |v| v.to_string());
            fact(
                page,
                "Pre-deploy version",
                &pre,
                "\"DatabaseMigration\".\"version\"",
            );
            let data = status
                .post_deploy
                .data_version
                .map_or("not read".into(), |v| format!("v{v}"));
            fact(
                page,
                "Post-deploy dataVersion",
                &data,
                "the last post-deploy migration completed",
            );
            let pending: Vec<String> = status
                .migrations
                .iter()
                .filter(|m| {
                    status
                        .post_deploy
                        .data_version
                        .is_none_or(|d| i64::from(m.version) > d)
                })
                .map(|m| format!("v{} {}", m.version, m.state.as_str()))
                .collect();
            let (value, note) = match (status.post_deploy.pending, pending.is_empty()) {
                (_, true) => ("none".to_string(), String::new()),
                (Some(next), false) => (
                    format!("{} (next: v{next})", pending.len()),
                    shorten_list(&pending, 6),
                ),
                (None, false) => (pending.len().to_string(), shorten_list(&pending, 6)),
            };
            fact(page, "Pending post-deploy migrations", &value, &note);
            let first_boot = match status.post_deploy.first_boot {
                Some(true) => "yes: the startup gate is skipped, reindex migrations are skipped",
                Some(false) => "no",
                None => "unknown (no firstBoot column)",
            };
            fact(page, "First boot", first_boot, "");
        }
        None => fact(
            page,
            "Database",
            "not read",
            "the bundle was made with --no-db",
        ),
    }
    match &incident.deployed {
        Some((release, how)) => fact(page, "Deployed release", release, how),
        None => fact(
            page,
            "Deployed release",
            "unknown",
            "no server start in the logs and nothing to infer it from",
        ),
    }
    let deferral = &incident.deferral;
    let defers = match deferral.defers {
        Some(true) => "deferred: not started by the server",
        Some(false) => "not deferred: they start by themselves",
        None => "unknown",
    };
    fact(
        page,
        "Post-deploy migrations (config)",
        defers,
        &deferral.meaning,
    );
    page.push_str("</dl>\n");

    // The rollback window, with the reason.
    page.push_str("<h3>Rollback window</h3>\n");
    match &incident.rollback {
        RollbackWindow::Checked(report) => {
            let tone = match report.verdict {
                Verdict::Safe => "ok",
                Verdict::Unsafe => "bad",
                Verdict::Unknown => "warn",
            };
            let _ = writeln!(
                page,
                "<p>{} Going back to <strong>{}</strong> (the latest patch of the minor before {}): {}</p>",
                badge(tone, window_word(report.verdict)),
                escape(&report.to),
                escape(report.from.as_deref().unwrap_or("the deployed release")),
                escape(&report.headline),
            );
            if let Some(how) = &report.from_inferred_by {
                let _ = writeln!(
                    page,
                    "<p class=\"muted\">The deployed release was inferred: {}</p>",
                    escape(how)
                );
            }
            if let Some(started) = report.checks.iter().find(|c| c.id == "post-deploy-started") {
                let _ = writeln!(
                    page,
                    "<p><strong>Has a post-deploy migration newer than {} started?</strong> {}</p>",
                    escape(&report.to),
                    escape(&started.message)
                );
                evidence_list(page, &started.evidence);
            }
        }
        RollbackWindow::Undetermined(why) => {
            let _ = writeln!(
                page,
                "<p>{} {}</p>",
                badge("warn", "NOT DETERMINED"),
                escape(why)
            );
        }
    }
    page.push_str("</section>\n");
}

fn shorten_list(items: &[String], max: usize) -> String {
    let mut shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let more;
    if items.len() > max {
        more = format!("and {} more", items.len() - max);
        shown.push(&more);
    }
    shown.join(", ")
}

fn evidence_list(page: &mut String, evidence: &[String]) {
    if evidence.is_empty() {
        return;
    }
    page.push_str("<ul>\n");
    for item in evidence {
        let _ = writeln!(page, "<li>{}</li>", escape(item));
    }
    page.push_str("</ul>\n");
}

fn legend_swatch(class: &str) -> String {
    format!(
        r#"<svg width="28" height="12" aria-hidden="true"><rect class="seg seg-{class}" x="1" y="1" width="26" height="10" rx="2"/></svg>"#
    )
}

fn timeline(page: &mut String, incident: &Incident<'_>) -> io::Result<()> {
    page.push_str("<section id=\"timeline\" aria-labelledby=\"timeline-h\">\n<h2 id=\"timeline-h\">Timeline</h2>\n");
    page.push_str("<ul class=\"legend\" aria-label=\"Legend\">\n");
    for (class, text) in [
        ("queued", "accepted, no start recorded: queued, or running unseen (a custom migration writes nothing until it ends)"),
        ("running", "running"),
        ("completed", "completed"),
        ("failed", "failed (cross-hatched)"),
        ("cancelled", "cancelled (dotted)"),
    ] {
        let _ = writeln!(page, "<li>{}{}</li>", legend_swatch(class), escape(text));
    }
    for (lane, shape, text) in [
        (
            Lane::Deploy,
            r#"<path class="mark-shape" d="M7 1l6 10h-12z"/>"#,
            "a server started with a release (dashed line)",
        ),
        (
            Lane::PreDeploy,
            r#"<circle class="mark-shape" cx="7" cy="6" r="5"/>"#,
            "pre-deploy migration, migration lock",
        ),
        (
            Lane::Error,
            r#"<path class="mark-shape" d="M2 1h10v10h-10z"/>"#,
            "startup gate, error, warning",
        ),
        (
            Lane::Queue,
            r#"<path class="mark-shape" d="M7 0l5 6-5 6-5-6z"/>"#,
            "queue and worker events",
        ),
    ] {
        let _ = writeln!(
            page,
            r#"<li><svg width="16" height="12" aria-hidden="true" class="log-mark lane-{}">{shape}</svg>{}</li>"#,
            lane.as_str(),
            escape(text)
        );
    }
    page.push_str("</ul>\n<p class=\"muted\">Each bar runs from the job's request to its end (or to the snapshot, when it has not ended), with its state written beside it. Hover or focus (Tab) a bar or a mark for its detail.</p>\n");
    let now = incident
        .snapshot
        .map(|s| s.taken_at)
        .unwrap_or(incident.manifest.created_at);
    let layout = svg_timeline::layout(&incident.spans, &incident.marks, now);
    page.push_str("<div class=\"scroll\">\n");
    let mut svg = Vec::new();
    svg_timeline::write(&mut svg, &layout, &incident.spans, &incident.marks)?;
    page.push_str(&String::from_utf8_lossy(&svg));
    page.push_str("</div>\n");
    if layout.marks_left_out > 0 {
        let _ = writeln!(
            page,
            "<p class=\"muted\">{} more log events are not marked (the table lists them).</p>",
            layout.marks_left_out
        );
    }

    // The same, as text.
    page.push_str("<h3>Post-deploy jobs</h3>\n");
    jobs_table(page, incident);
    let dated = incident.events.len();
    let _ = writeln!(
        page,
        "<details{}><summary>Timeline events ({dated})</summary>\n<div class=\"scroll\"><table>\n<thead><tr><th>Time (UTC)</th><th>Source</th><th>Kind</th><th>Migration</th><th>Message</th></tr></thead>\n<tbody>",
        if dated <= 60 { " open" } else { "" }
    );
    for event in incident.events.iter().take(EVENT_ROWS_MAX) {
        let _ = writeln!(
            page,
            "<tr><td class=\"mono nowrap\">{}</td><td>{}</td><td class=\"nowrap\">{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            escape(&event.at.map_or("undated".into(), iso)),
            escape(&event.source),
            escape(&event.kind),
            escape(&event.version.map(|v| format!("v{v}")).unwrap_or_default()),
            escape(&event.message),
        );
    }
    page.push_str("</tbody></table></div>\n");
    if dated > EVENT_ROWS_MAX {
        let _ = writeln!(
            page,
            "<p class=\"muted\">{} more events are in the bundle's timeline.json.</p>",
            dated - EVENT_ROWS_MAX
        );
    }
    page.push_str("</details>\n</section>\n");
    Ok(())
}

fn jobs_table(page: &mut String, incident: &Incident<'_>) {
    if incident.spans.is_empty() {
        page.push_str("<p>No post-deploy job in the snapshot.</p>\n");
        return;
    }
    page.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Migration</th><th>Job</th><th>State</th><th>Requested</th><th>Started</th><th>Ended</th><th>Progress or error</th></tr></thead>\n<tbody>\n");
    let mut spans: Vec<&JobSpan> = incident.spans.iter().collect();
    spans.sort_by_key(|s| (s.version, s.requested, s.attempt));
    for span in spans {
        let tone = match span.state {
            BarState::Failed => "bad",
            BarState::Completed => "ok",
            BarState::Cancelled | BarState::Queued => "warn",
            BarState::Running => "info",
        };
        let time = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(iso).unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td class=\"nowrap\">v{}{}</td><td class=\"mono nowrap\">{}</td><td>{}</td><td class=\"mono nowrap\">{}</td><td class=\"mono nowrap\">{}</td><td class=\"mono nowrap\">{}</td><td class=\"msg\">{}</td></tr>",
            span.version,
            if span.attempts > 1 { escape(&format!(" ({} of {})", span.attempt, span.attempts)) } else { String::new() },
            escape(&span.job_id),
            badge(tone, span.state.as_str()),
            escape(&time(span.requested)),
            escape(&time(span.started)),
            escape(&time(span.finished)),
            escape(&span.outcome),
        );
    }
    page.push_str("</tbody></table></div>\n");
}

fn severity_tone(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "bad",
        Severity::Warning => "warn",
        Severity::Info => "info",
    }
}

fn findings(page: &mut String, incident: &Incident<'_>) {
    page.push_str("<section id=\"findings\" aria-labelledby=\"findings-h\">\n<h2 id=\"findings-h\">Findings</h2>\n");
    match incident.status {
        Some(status) if !status.findings.is_empty() => {
            page.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Severity</th><th>Finding</th><th>Migration</th><th>What it means</th></tr></thead>\n<tbody>\n");
            for finding in &status.findings {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td class=\"mono nowrap\">{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                    badge(severity_tone(finding.severity), finding.severity.as_str()),
                    escape(finding.id),
                    escape(&finding.version.map(|v| format!("v{v}")).unwrap_or_default()),
                    escape(&finding.message)
                );
            }
            page.push_str("</tbody></table></div>\n");
        }
        Some(_) => page.push_str("<p>Nothing abnormal: no finding.</p>\n"),
        None => page.push_str("<p>No database was read, so there are no findings.</p>\n"),
    }
    if let RollbackWindow::Checked(report) = &incident.rollback {
        let open: Vec<_> = report
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Unknown))
            .collect();
        let _ = writeln!(
            page,
            "<h3>Rollback checks that did not pass (to {})</h3>",
            escape(&report.to)
        );
        if open.is_empty() {
            page.push_str("<p>Every check passed.</p>\n");
        } else {
            page.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Outcome</th><th>Check</th><th>Impact</th><th>Message and evidence</th></tr></thead>\n<tbody>\n");
            for check in open {
                let (tone, word) = match check.outcome {
                    Outcome::Fail => ("bad", "fail"),
                    _ => ("warn", "unknown"),
                };
                let mut text = escape(&check.message);
                if !check.evidence.is_empty() {
                    text.push_str("<ul>");
                    for item in &check.evidence {
                        let _ = write!(text, "<li>{}</li>", escape(item));
                    }
                    text.push_str("</ul>");
                }
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td class=\"mono nowrap\">{}</td><td>{}</td><td class=\"msg\">{text}</td></tr>",
                    badge(tone, word),
                    escape(check.id),
                    escape(check.severity.as_str()),
                );
            }
            page.push_str("</tbody></table></div>\n");
        }
    }
    page.push_str("</section>\n");
}

fn recovery(page: &mut String, incident: &Incident<'_>) {
    page.push_str("<section id=\"recovery\" aria-labelledby=\"recovery-h\">\n<h2 id=\"recovery-h\">Recovery</h2>\n");
    match &incident.recovery {
        Err(why) => {
            let _ = writeln!(page, "<p>{}</p>", escape(why));
        }
        Ok(steps) => {
            page.push_str("<p class=\"muted\">The steps of <code>medmig recover</code>, in the order to take them. Set <code>$MEDPLUM_BASE_URL</code> and <code>$MEDPLUM_TOKEN</code> before pasting a command.</p>\n<ol class=\"steps\">\n");
            for step in steps {
                let tone = match step.risk.as_str() {
                    "high" => "bad",
                    "medium" => "warn",
                    _ => "ok",
                };
                let _ = writeln!(
                    page,
                    "<li id=\"step-{}\"><strong>{}</strong> {} <span class=\"muted mono\">{}</span>",
                    step.step,
                    escape(&step.title),
                    badge(tone, &format!("{} risk", step.risk.as_str())),
                    escape(step.id)
                );
                evidence_list(page, &step.evidence);
                let _ = writeln!(page, "<p>{}</p>", escape(&step.explanation));
                if !step.commands.is_empty() {
                    let _ = writeln!(page, "<pre>{}</pre>", escape(&step.commands.join("\n")));
                }
                let _ = writeln!(
                    page,
                    "<p><strong>Check:</strong> {}</p></li>",
                    escape(&step.check)
                );
            }
            page.push_str("</ol>\n");
        }
    }
    page.push_str("</section>\n");
}

/// A table of JSON rows, one column per key; `empty` when there are none.
fn rows_table(page: &mut String, rows: Option<&Value>, columns: &[(&str, &str)], empty: &str) {
    let rows: Vec<&Value> = match rows {
        Some(Value::Array(rows)) => rows.iter().collect(),
        Some(Value::Object(_)) => rows.into_iter().collect(),
        _ => Vec::new(),
    };
    if rows.is_empty() {
        let _ = writeln!(page, "<p>{}</p>", escape(empty));
        return;
    }
    page.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
    for (_, header) in columns {
        let _ = write!(page, "<th>{}</th>", escape(header));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        page.push_str("<tr>");
        for (key, _) in columns {
            let _ = write!(
                page,
                "<td class=\"msg\">{}</td>",
                escape(&cell(row.get(*key)))
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}

/// A JSON value as a table cell.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(true)) => "yes".into(),
        Some(Value::Bool(false)) => "no".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| cell(Some(item)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

fn diagnostics(page: &mut String, incident: &Incident<'_>) {
    let d = incident.diagnostics;
    page.push_str("<section id=\"diagnostics\" aria-labelledby=\"diagnostics-h\">\n<h2 id=\"diagnostics-h\">Diagnostics</h2>\n");
    if incident.snapshot.is_none() {
        page.push_str("<p>No database was read (--no-db): the bundle holds no diagnostics.</p>\n");
    } else {
        page.push_str("<h3>Migration lock holders and migration activity</h3>\n");
        rows_table(
            page,
            d.get("migration_lock"),
            &[
                ("pid", "PID"),
                ("application_name", "Application"),
                ("state", "State"),
                ("query_start", "Query start"),
                ("holds_migration_lock", "Holds lock 1"),
                ("runs_ddl", "Runs DDL"),
                ("query", "Statement (literals removed)"),
            ],
            "No session held the migration lock (advisory lock 1) or ran migration DDL when the bundle was made.",
        );
        page.push_str("<h3>Long transactions (open over 5 minutes)</h3>\n");
        rows_table(
            page,
            d.get("long_transactions"),
            &[
                ("pid", "PID"),
                ("user", "User"),
                ("application", "Application"),
                ("state", "State"),
                ("transaction_age_s", "Transaction age (s)"),
                ("wait_event_type", "Wait"),
                ("wait_event", "Wait event"),
                ("query", "Statement (literals removed)"),
            ],
            "No transaction was open for longer than 5 minutes.",
        );
        page.push_str("<h3>Blocked sessions</h3>\n");
        rows_table(
            page,
            d.get("blocking"),
            &[
                ("pid", "PID"),
                ("blocked_by", "Blocked by"),
                ("application", "Application"),
                ("query_age_s", "Query age (s)"),
                ("query", "Statement (literals removed)"),
            ],
            "No session was blocked.",
        );
        page.push_str("<h3>Invalid indexes</h3>\n");
        match incident.status {
            Some(status) if !status.invalid_indexes.is_empty() => {
                page.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Index</th><th>Table</th><th>Ready</th><th>Created by</th><th>Definition</th></tr></thead>\n<tbody>\n");
                for index in &status.invalid_indexes {
                    let _ = writeln!(
                        page,
                        "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                        escape(&index.found.index),
                        escape(&format!("{}.{}", index.found.schema, index.found.table)),
                        if index.found.ready { "yes" } else { "no" },
                        escape(&index.created_by.map(|v| format!("v{v}")).unwrap_or_default()),
                        escape(&index.found.definition),
                    );
                }
                page.push_str("</tbody></table></div>\n");
            }
            _ => page.push_str("<p>No invalid index (<code>pg_index.indisvalid</code> is true for every index).</p>\n"),
        }
        let not_validated = d
            .get("invalid_objects")
            .and_then(|o| o.get("constraints_not_validated"));
        if not_validated
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            page.push_str("<h3>Constraints not validated</h3>\n");
            rows_table(
                page,
                not_validated,
                &[
                    ("table", "Table"),
                    ("constraint", "Constraint"),
                    ("definition", "Definition"),
                ],
                "",
            );
        }
        if let Some(server) = d.get("server") {
            let _ = writeln!(
                page,
                "<p class=\"muted\">PostgreSQL {}.</p>",
                escape(&cell(server.get("server_version")))
            );
        }
    }

    page.push_str("<h3>What the bundle could not collect</h3>\n");
    if incident.manifest.not_collected.is_empty() {
        page.push_str("<p>Nothing: every source was read.</p>\n");
    } else {
        page.push_str("<ul>\n");
        for gap in &incident.manifest.not_collected {
            let _ = writeln!(
                page,
                "<li><strong>{}</strong>: {}</li>",
                escape(&gap.what),
                escape(&gap.why)
            );
        }
        page.push_str("</ul>\n");
    }
    let redacted: u64 = incident.manifest.redactions.values().sum();
    let rules: Vec<String> = incident
        .manifest
        .redactions
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    let _ = writeln!(
        page,
        "<p class=\"muted\">Redaction: {} replaced{}. This report was made from the bundle's redacted files only.</p>",
        escape(&crate::text::count(redacted, "value", "values")),
        escape(&if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) }),
    );
    if let Some(totals) = incident.log_totals {
        let _ = writeln!(
            page,
            "<p class=\"muted\">Logs: {} lines read, {} kept, {} outside the time window.</p>",
            escape(&cell(totals.get("lines_read"))),
            escape(&cell(totals.get("lines_kept"))),
            escape(&cell(totals.get("lines_outside_window"))),
        );
    }
    page.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_control_character() {
        assert_eq!(
            escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape(r#"a="b" & c"#), "a=&quot;b&quot; &amp; c");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(escape("line\nnext\tcol"), "line\nnext\tcol");
        assert_eq!(escape("\u{1b}[31mred\r"), "\\x1b[31mred\\r");
        assert_eq!(escape("\u{0}\u{7f}\u{9b}"), "\\x00\\x7f\\u{9b}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("ünïcödé ✓"), "ünïcödé ✓");
        for hostile in [
            "\"><img src=x onerror=alert(1)>",
            "</title><svg onload=1>",
            "'; x='",
        ] {
            let escaped = escape(hostile);
            assert!(!escaped.contains(['<', '>', '"', '\'']), "{escaped}");
        }
    }

    #[test]
    fn the_policy_hashes_the_page_style_and_script() {
        // SHA-256 of "abc", as base64.
        assert_eq!(
            csp_hash("abc"),
            "'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='"
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let policy = content_security_policy();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!policy.contains("unsafe"));
    }
}
