//! The incident report's timeline as an inline SVG picture, drawn here in Rust: one bar per
//! post-deploy job (request → start → end), the log events as marks on the same time axis,
//! and a dashed line where a server started with a release.
//!
//! This module owns the geometry ([`layout`], pure and unit-tested) and the SVG markup
//! ([`write`]). It decides no state: each job's state and times come from `analyze/` through
//! `commands/report.rs`. Every text from the bundle goes through [`super::html::escape`].
//! States are told apart by colour and, for people who cannot see colour (or print in black
//! and white), by a pattern and by the state's name written beside each bar.

use std::io::{self, Write};

use chrono::{DateTime, Duration, Utc};

use super::html::escape;

/// Width of the picture in user units (it scales to the page).
pub const WIDTH: f64 = 1200.0;
/// Where the time axis starts and ends: job labels on the left, state names on the right.
const PLOT_LEFT: f64 = 150.0;
const PLOT_RIGHT: f64 = 1060.0;
const TOP: f64 = 44.0;
const LANE_HEIGHT: f64 = 24.0;
const ROW_HEIGHT: f64 = 22.0;
const BAR_HEIGHT: f64 = 14.0;
/// The narrowest a bar or segment is drawn, so that a job of a second still shows.
pub const MIN_WIDTH: f64 = 3.0;
/// The cap that shows how a job ended when no start was recorded.
const END_CAP: f64 = 6.0;
/// At most this many marks per lane are drawn (and focusable); the event table lists all.
pub const MARKS_PER_LANE_MAX: usize = 1500;

/// How a job stands, as the picture tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarState {
    /// Accepted and no start recorded (queued, or running a custom migration, which writes
    /// nothing to its job until it ends).
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl BarState {
    /// The class suffix and the word written beside the bar.
    pub fn as_str(self) -> &'static str {
        match self {
            BarState::Queued => "queued",
            BarState::Running => "running",
            BarState::Completed => "completed",
            BarState::Failed => "failed",
            BarState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn ended(self) -> bool {
        matches!(
            self,
            BarState::Completed | BarState::Failed | BarState::Cancelled
        )
    }
}

/// One post-deploy job to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpan {
    pub version: u32,
    pub job_id: String,
    /// Its place among the jobs of its migration, from 1, and how many there are.
    pub attempt: usize,
    pub attempts: usize,
    pub state: BarState,
    pub requested: Option<DateTime<Utc>>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// What hovering or focusing the bar shows (plain text).
    pub detail: String,
    /// Its progress or error, for the table beside the picture (plain text).
    pub outcome: String,
}

/// The lane of a log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// A server started with a release.
    Deploy,
    /// Pre-deploy migrations, the migration lock.
    PreDeploy,
    /// The startup gate and every error.
    Error,
    /// Queue, worker and other post-deploy events.
    Queue,
}

impl Lane {
    pub const ALL: [Lane; 4] = [Lane::Deploy, Lane::PreDeploy, Lane::Error, Lane::Queue];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Deploy => "deploy",
            Lane::PreDeploy => "pre-deploy",
            Lane::Error => "error",
            Lane::Queue => "queue",
        }
    }

    /// The lane's label in the picture.
    pub fn title(self) -> &'static str {
        match self {
            Lane::Deploy => "Server starts",
            Lane::PreDeploy => "Pre-deploy, lock",
            Lane::Error => "Gate, errors",
            Lane::Queue => "Queue, workers",
        }
    }
}

/// One log event to mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: DateTime<Utc>,
    pub lane: Lane,
    /// The timeline kind (`startup-gate`, …), for the class.
    pub kind: String,
    /// A short label (a deploy's release); empty for most.
    pub label: String,
    /// What hovering or focusing the mark shows (plain text).
    pub detail: String,
}

/// A piece of a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `queued`, or the state whose colour it takes.
    pub class: &'static str,
    pub x: f64,
    pub width: f64,
}

/// Where one job is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Index into the spans given to [`layout`].
    pub span: usize,
    pub y: f64,
    pub segments: Vec<Segment>,
}

/// Where everything is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// In the order drawn, top to bottom: by migration, then by request time.
    pub bars: Vec<Bar>,
    /// `(x, index into marks)` per lane, at most [`MARKS_PER_LANE_MAX`] each.
    pub marks: Vec<(Lane, Vec<(f64, usize)>)>,
    /// Marks left out per lane.
    pub marks_left_out: usize,
    pub ticks: Vec<(f64, DateTime<Utc>)>,
    pub height: f64,
}

impl Layout {
    /// The x of a moment.
    pub fn x(&self, at: DateTime<Utc>) -> f64 {
        x_of(self.start, self.end, at)
    }
}

fn x_of(start: DateTime<Utc>, end: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    let span = (end - start).num_milliseconds().max(1) as f64;
    let offset = (at - start).num_milliseconds() as f64;
    PLOT_LEFT + (offset / span).clamp(0.0, 1.0) * (PLOT_RIGHT - PLOT_LEFT)
}

/// The geometry of the picture. `now` is the snapshot's time: a job that has not ended is
/// drawn up to it, and the axis reaches it.
pub fn layout(spans: &[JobSpan], marks: &[Mark], now: DateTime<Utc>) -> Layout {
    let times = spans
        .iter()
        .flat_map(|s| [s.requested, s.started, s.finished])
        .flatten()
        .chain(marks.iter().map(|m| m.at))
        .chain(std::iter::once(now));
    let (mut start, mut end) = (now, now);
    for at in times {
        start = start.min(at);
        end = end.max(at);
    }
    // A margin on each side, so that the first and last marks are not cut in half.
    let margin = ((end - start) / 40).max(Duration::seconds(30));
    // Checked: chrono's times reach year 262,143, and a bundle may hold one so far off.
    let (start, end) = (
        start.checked_sub_signed(margin).unwrap_or(start),
        end.checked_add_signed(margin).unwrap_or(end),
    );

    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| {
        let s = &spans[i];
        (
            s.version,
            s.requested.or(s.started).or(s.finished),
            s.attempt,
        )
    });
    let lanes_height = Lane::ALL.len() as f64 * LANE_HEIGHT;
    let mut bars = Vec::new();
    for (row, &i) in order.iter().enumerate() {
        let span = &spans[i];
        let y = TOP + lanes_height + 8.0 + row as f64 * ROW_HEIGHT;
        bars.push(Bar {
            span: i,
            y,
            segments: segments(span, start, end, now),
        });
    }

    let mut by_lane = Vec::new();
    let mut left_out = 0;
    for lane in Lane::ALL {
        let mut placed = Vec::new();
        for (i, mark) in marks.iter().enumerate().filter(|(_, m)| m.lane == lane) {
            if placed.len() < MARKS_PER_LANE_MAX {
                placed.push((x_of(start, end, mark.at), i));
            } else {
                left_out += 1;
            }
        }
        by_lane.push((lane, placed));
    }

    let height = TOP + lanes_height + 8.0 + spans.len().max(1) as f64 * ROW_HEIGHT + 16.0;
    Layout {
        start,
        end,
        bars,
        marks: by_lane,
        marks_left_out: left_out,
        ticks: ticks(start, end),
        height,
    }
}

/// The pieces of one job's bar: queued from request to start, then the state's colour to
/// the end (or to `now`). With no start recorded the whole bar is the queued pattern (queued,
/// or running unseen), ended by a cap of the state's colour when the job ended.
fn segments(
    span: &JobSpan,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Segment> {
    let x = |at| x_of(start, end, at);
    let stop = span.finished.unwrap_or(now);
    let begin = span.requested.or(span.started).unwrap_or(stop);
    let stop = stop.max(begin);
    let piece = |class, from: f64, to: f64| Segment {
        class,
        x: from,
        width: (to - from).max(MIN_WIDTH),
    };
    let mut pieces = Vec::new();
    match span.started.filter(|s| *s >= begin && *s <= stop) {
        Some(started) => {
            let mut from = x(started);
            if started > begin {
                let queued = piece("queued", x(begin), x(started));
                from = queued.x + queued.width;
                pieces.push(queued);
            }
            pieces.push(piece(
                span.state.as_str(),
                from,
                x(stop).max(from + MIN_WIDTH),
            ));
        }
        None => {
            let queued = piece("queued", x(begin), x(stop));
            let end_x = queued.x + queued.width;
            pieces.push(queued);
            if span.state != BarState::Queued {
                // The cap ends where the job ended, over the end of the queued piece.
                let cap_x = (end_x - END_CAP).max(pieces[0].x);
                pieces.push(piece(span.state.as_str(), cap_x, end_x));
            }
        }
    }
    pieces
}

/// Tick marks at a round step: some five to ten across.
fn ticks(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(f64, DateTime<Utc>)> {
    const STEPS: [i64; 14] = [
        60, 300, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
        2_592_000, 31_536_000,
    ];
    let span = (end - start).num_seconds().max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|step| span / step <= 8)
        .unwrap_or(span / 8 + 1);
    let first = (start.timestamp() / step + 1) * step;
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= end.timestamp() && ticks.len() < 20 {
        if let Some(at) = DateTime::from_timestamp(t, 0) {
            ticks.push((x_of(start, end, at), at));
        }
        t += step;
    }
    ticks
}

/// The SVG element: patterns, axis, lanes of marks, bars. `spans` and `marks` are those
/// given to [`layout`].
pub fn write(
    out: &mut impl Write,
    layout: &Layout,
    spans: &[JobSpan],
    marks: &[Mark],
) -> io::Result<()> {
    let height = layout.height;
    writeln!(
        out,
        r#"<svg id="timeline-chart" role="img" aria-labelledby="timeline-chart-title" viewBox="0 0 {WIDTH} {height:.0}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">"#
    )?;
    writeln!(
        out,
        r#"<title id="timeline-chart-title">Post-deploy jobs and log events from {} to {} (UTC)</title>"#,
        escape(&iso(layout.start)),
        escape(&iso(layout.end))
    )?;
    out.write_all(DEFS.as_bytes())?;

    // The axis: a line per tick across the whole picture, the time above.
    let bottom = height - 8.0;
    for (x, at) in &layout.ticks {
        writeln!(
            out,
            r#"<line class="tick" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}"/><text class="tick-label" x="{x:.1}" y="14" text-anchor="middle">{}</text><text class="tick-label" x="{x:.1}" y="28" text-anchor="middle">{}</text>"#,
            TOP - 8.0,
            escape(&at.format("%Y-%m-%d").to_string()),
            escape(&at.format("%H:%MZ").to_string()),
        )?;
    }

    // Lanes of log events.
    for (n, (lane, placed)) in layout.marks.iter().enumerate() {
        let y = TOP + n as f64 * LANE_HEIGHT + LANE_HEIGHT / 2.0;
        writeln!(
            out,
            r#"<text class="lane-label" x="8" y="{:.1}">{}</text><line class="lane" x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}"/>"#,
            y + 4.0,
            escape(lane.title())
        )?;
        for (n, (x, i)) in placed.iter().enumerate() {
            let mark = &marks[*i];
            // A release's label goes left of its line when the next start would cover it.
            let crowded = placed.get(n + 1).is_some_and(|(next, _)| next - x < 64.0);
            let (label_x, anchor) = if crowded {
                (x - 8.0, "end")
            } else {
                (x + 8.0, "start")
            };
            write!(
                out,
                r#"<g class="log-mark lane-{} kind-{}" tabindex="0" data-detail=""><title>{}</title>"#,
                lane.as_str(),
                escape(&mark.kind),
                escape(&mark.detail)
            )?;
            match lane {
                Lane::Deploy => write!(
                    out,
                    r#"<line class="deploy-line" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}"/><path class="mark-shape" d="M{:.1} {:.1}l6 10h-12z"/><text class="deploy-label" x="{label_x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                    y - 6.0,
                    x,
                    y - 6.0,
                    y + 4.0,
                    escape(&mark.label)
                )?,
                Lane::PreDeploy => write!(
                    out,
                    r#"<circle class="mark-shape" cx="{x:.1}" cy="{y:.1}" r="5"/>"#
                )?,
                Lane::Error => write!(
                    out,
                    r#"<path class="mark-shape" d="M{:.1} {:.1}h10v10h-10z M{:.1} {:.1}l6 6 M{:.1} {:.1}l-6 6"/>"#,
                    x - 5.0,
                    y - 5.0,
                    x - 3.0,
                    y - 3.0,
                    x + 3.0,
                    y - 3.0
                )?,
                Lane::Queue => write!(
                    out,
                    r#"<path class="mark-shape" d="M{x:.1} {:.1}l5 6-5 6-5-6z"/>"#,
                    y - 6.0
                )?,
            }
            writeln!(out, "</g>")?;
        }
    }

    // One row per job.
    for bar in &layout.bars {
        let span = &spans[bar.span];
        let state = span.state.as_str();
        writeln!(
            out,
            r#"<g class="job-bar state-{state}" data-version="{}" data-job="{}" data-state="{state}" tabindex="0" data-detail=""><title>{}</title>"#,
            span.version,
            escape(&span.job_id),
            escape(&span.detail)
        )?;
        // The whole row answers the pointer, not only the bar, which may be thin.
        writeln!(
            out,
            r#"<rect class="hit" x="0" y="{:.1}" width="{WIDTH}" height="{ROW_HEIGHT}" fill="transparent"/>"#,
            bar.y - (ROW_HEIGHT - BAR_HEIGHT) / 2.0
        )?;
        let text_y = bar.y + BAR_HEIGHT - 3.0;
        let label = if span.attempts > 1 {
            format!("v{} · {} of {}", span.version, span.attempt, span.attempts)
        } else {
            format!("v{}", span.version)
        };
        writeln!(
            out,
            r#"<text class="row-label" x="8" y="{text_y:.1}">{}</text>"#,
            escape(&label)
        )?;
        for segment in &bar.segments {
            writeln!(
                out,
                r#"<rect class="seg seg-{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{BAR_HEIGHT}" rx="2"/>"#,
                segment.class, segment.x, bar.y, segment.width
            )?;
        }
        writeln!(
            out,
            r#"<text class="state-label state-text-{state}" x="{:.1}" y="{text_y:.1}">{}</text></g>"#,
            PLOT_RIGHT + 10.0,
            escape(state)
        )?;
    }
    if spans.is_empty() {
        writeln!(
            out,
            r#"<text class="row-label" x="{PLOT_LEFT}" y="{:.1}">No post-deploy job in the snapshot.</text>"#,
            TOP + Lane::ALL.len() as f64 * LANE_HEIGHT + 20.0
        )?;
    }
    writeln!(out, "</svg>")
}

/// Patterns that tell the states apart without colour.
const DEFS: &str = r##"<defs>
<pattern id="pat-queued" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde8b0"/><line x1="0" y1="0" x2="0" y2="6" stroke="#b7791f" stroke-width="2.5"/></pattern>
<pattern id="pat-failed" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#c53030"/><path d="M0 0l6 6M6 0l-6 6" stroke="#fff" stroke-width="1"/></pattern>
<pattern id="pat-cancelled" width="5" height="5" patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="#a0aec0"/><circle cx="2.5" cy="2.5" r="1" fill="#2d3748"/></pattern>
</defs>
"##;

/// A moment as the report writes it: ISO 8601 in UTC, to the second.
pub fn iso(at: DateTime<Utc>) -> String {
    super::timestamp(&at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn span(version: u32, state: BarState, times: [Option<&str>; 3]) -> JobSpan {
        JobSpan {
            version,
            job_id: format!("job-{version}"),
            attempt: 1,
            attempts: 1,
            state,
            requested: times[0].map(at),
            started: times[1].map(at),
            finished: times[2].map(at),
            detail: String::new(),
            outcome: String::new(),
        }
    }

    const NOW: &str = "2026-03-02T12:00:00Z";

    #[test]
    fn bars_are_ordered_by_migration_then_request_and_never_empty() {
        let spans = [
            span(
                45,
                BarState::Failed,
                [
                    Some("2026-03-02T06:00:00Z"),
                    None,
                    Some("2026-03-02T06:00:05Z"),
                ],
            ),
            span(
                44,
                BarState::Completed,
                [
                    Some("2026-03-01T10:00:00Z"),
                    Some("2026-03-01T10:01:00Z"),
                    Some("2026-03-01T10:13:00Z"),
                ],
            ),
            span(
                45,
                BarState::Failed,
                [
                    Some("2026-03-01T12:00:00Z"),
                    None,
                    Some("2026-03-01T12:30:00Z"),
                ],
            ),
        ];
        let layout = layout(&spans, &[], at(NOW));
        let order: Vec<(u32, Option<DateTime<Utc>>)> = layout
            .bars
            .iter()
            .map(|b| (spans[b.span].version, spans[b.span].requested))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert!(layout.bars.windows(2).all(|w| w[0].y < w[1].y));
        for bar in &layout.bars {
            assert!(!bar.segments.is_empty());
            for segment in &bar.segments {
                assert!(segment.width > 0.0, "{segment:?}");
                assert!(segment.x >= PLOT_LEFT && segment.x <= PLOT_RIGHT + END_CAP + MIN_WIDTH);
            }
        }
        // Request, start and end of the completed job: a queued piece, then its state.
        let completed = layout.bars.iter().find(|b| b.span == 1).unwrap();
        let classes: Vec<&str> = completed.segments.iter().map(|s| s.class).collect();
        assert_eq!(classes, ["queued", "completed"]);
        let [queued, done] = &completed.segments[..] else {
            unreachable!()
        };
        assert!((queued.x - layout.x(at("2026-03-01T10:00:00Z"))).abs() < 0.01);
        assert!((done.x + done.width - layout.x(at("2026-03-01T10:13:00Z"))).abs() < 0.01);
    }

    #[test]
    fn times_at_the_ends_of_chronos_range_are_drawn_not_a_panic() {
        let spans = [span(
            45,
            BarState::Failed,
            [
                Some("2026-03-02T06:00:00Z"),
                None,
                Some("+262142-12-31T23:59:59Z"),
            ],
        )];
        let layout = layout(&spans, &[], DateTime::<Utc>::MIN_UTC);
        assert_eq!(layout.bars.len(), 1);
        assert!(super::layout(&[], &[], DateTime::<Utc>::MAX_UTC)
            .bars
            .is_empty());
    }

    #[test]
    fn a_job_with_no_end_reaches_the_snapshot_time() {
        let spans = [span(
            46,
            BarState::Running,
            [
                Some("2026-03-02T10:00:00Z"),
                Some("2026-03-02T10:00:30Z"),
                None,
            ],
        )];
        let layout = layout(&spans, &[], at(NOW));
        let last = layout.bars[0].segments.last().unwrap();
        assert_eq!(last.class, "running");
        assert!((last.x + last.width - layout.x(at(NOW))).abs() < 0.01);
        assert!(layout.end > at(NOW), "the axis goes past now");
    }

    #[test]
    fn a_job_with_no_start_shows_a_queued_segment_and_how_it_ended() {
        let spans = [
            span(
                45,
                BarState::Failed,
                [
                    Some("2026-03-02T06:00:00Z"),
                    None,
                    Some("2026-03-02T06:30:00Z"),
                ],
            ),
            span(
                46,
                BarState::Queued,
                [Some("2026-03-02T07:00:00Z"), None, None],
            ),
        ];
        let layout = layout(&spans, &[], at(NOW));
        let failed: Vec<&str> = layout.bars[0].segments.iter().map(|s| s.class).collect();
        assert_eq!(failed, ["queued", "failed"]);
        let queued = &layout.bars[1].segments;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].class, "queued");
        assert!((queued[0].x + queued[0].width - layout.x(at(NOW))).abs() < 0.01);
    }

    #[test]
    fn marks_fall_in_their_lanes_on_the_same_axis() {
        let spans = [span(
            45,
            BarState::Failed,
            [
                Some("2026-03-02T06:00:00Z"),
                None,
                Some("2026-03-02T06:30:00Z"),
            ],
        )];
        let mark = |when: &str, lane| Mark {
            at: at(when),
            lane,
            kind: "startup-gate".into(),
            label: String::new(),
            detail: String::new(),
        };
        let marks = [
            mark("2026-03-02T06:00:00Z", Lane::Error),
            mark("2026-03-01T00:00:00Z", Lane::Deploy),
        ];
        let layout = layout(&spans, &marks, at(NOW));
        let error = &layout
            .marks
            .iter()
            .find(|(l, _)| *l == Lane::Error)
            .unwrap()
            .1;
        assert_eq!(error.len(), 1);
        assert!((error[0].0 - layout.bars[0].segments[0].x).abs() < 0.01);
        assert!(layout.start < at("2026-03-01T00:00:00Z"));
        assert!(layout.ticks.len() >= 3 && layout.ticks.len() <= 20);
        assert!(layout.ticks.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn the_svg_escapes_what_came_from_the_bundle() {
        let mut spans = [span(
            45,
            BarState::Failed,
            [
                Some("2026-03-02T06:00:00Z"),
                None,
                Some("2026-03-02T06:30:00Z"),
            ],
        )];
        spans[0].detail = "</title><script>alert(1)</script>".into();
        spans[0].job_id = "\"><x".into();
        let layout = layout(&spans, &[], at(NOW));
        let mut out = Vec::new();
        write(&mut out, &layout, &spans, &[]).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;/title&gt;&lt;script&gt;"));
        assert!(svg.contains(r#"data-job="&quot;&gt;&lt;x""#));
        assert!(svg.contains(r#"class="job-bar state-failed" data-version="45""#));
    }
}
