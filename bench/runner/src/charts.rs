//! SVG charts of a run, drawn with plotters next to the report: req/s and server CPU per
//! request for each server and scenario, and the memory check's resident set size.
//!
//! plotters is built without its `ttf` feature: text is written as SVG `<text>` with a
//! generic font family, laid out with plotters' own estimate of its width, so no system
//! font is needed to draw the charts (the viewer picks the font).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::load::{Measurement, Scenario};
use crate::memory::MemoryResult;
use crate::report::Report;
use crate::servers::ServerKind;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

/// A chart written next to the report.
pub struct Chart {
    /// What it shows, used as the image's alternative text.
    pub title: String,
    pub path: PathBuf,
}

impl Chart {
    /// The file's name, for a link relative to the report beside it.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// `<dir>/<report stem>-<name>.svg` for the report at `out`.
pub fn path_next_to(out: &Path, name: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    out.with_file_name(format!("{stem}-{name}.svg"))
}

/// Each server's colour, the same in every chart; ours in warm colours.
fn color(kind: ServerKind) -> RGBColor {
    match kind {
        ServerKind::Fred => RGBColor(110, 110, 110),
        ServerKind::RedisRs => RGBColor(175, 175, 175),
        ServerKind::TowerSessions => RGBColor(31, 119, 180),
        ServerKind::TowerMoka => RGBColor(120, 180, 220),
        ServerKind::Ours => RGBColor(214, 39, 40),
        ServerKind::ActixSession => RGBColor(44, 160, 44),
        ServerKind::OursActix => RGBColor(255, 127, 14),
        ServerKind::Memory => RGBColor(148, 103, 189),
    }
}

fn draw_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow!("cannot draw the chart: {error:?}")
}

struct Bar {
    label: &'static str,
    color: RGBColor,
    value: f64,
    /// The lowest and highest value over the rounds, when there were several.
    range: Option<(f64, f64)>,
}

struct Panel {
    title: String,
    bars: Vec<Bar>,
}

/// The run's charts: req/s and server CPU per request, one panel per scenario.
pub fn results(report: &Report, out: &Path) -> anyhow::Result<Vec<Chart>> {
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|scenario| scenario.measured(report.params.scenarios))
        .collect();
    if scenarios.is_empty() || report.results.is_empty() {
        return Ok(Vec::new());
    }
    let panels = |value: fn(&Measurement) -> f64| -> Vec<Panel> {
        scenarios
            .iter()
            .map(|&scenario| Panel {
                title: scenario.title().to_owned(),
                bars: report
                    .results
                    .iter()
                    .map(|(kind, results)| Bar {
                        label: kind.label(),
                        color: color(*kind),
                        value: value(scenario.pick(results)),
                        range: report
                            .rounds_of(*kind)
                            .filter(|r| r.len() > 1)
                            .map(|rounds| {
                                rounds
                                    .iter()
                                    .map(|r| value(scenario.pick(r)))
                                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                                        (lo.min(v), hi.max(v))
                                    })
                            }),
                    })
                    .collect(),
            })
            .collect()
    };
    let rounds_note = if report.params.rounds > 1 {
        " (bar: median round; line: range over the rounds)"
    } else {
        ""
    };
    let rps = Chart {
        title: format!("Successful requests per second, higher is better{rounds_note}"),
        path: path_next_to(out, "rps"),
    };
    bar_panels(&rps.path, &rps.title, "req/s", 0, &panels(Measurement::rps))?;
    let cpu = Chart {
        title: format!("Server CPU time per request, µs, lower is better{rounds_note}"),
        path: path_next_to(out, "cpu"),
    };
    bar_panels(
        &cpu.path,
        &cpu.title,
        "server CPU µs per request",
        1,
        &panels(Measurement::server_cpu_us_per_request),
    )?;
    Ok(vec![rps, cpu])
}

/// Horizontal bars, one panel per scenario, the servers in report order from the top.
fn bar_panels(
    path: &Path,
    title: &str,
    unit: &str,
    decimals: usize,
    panels: &[Panel],
) -> anyhow::Result<()> {
    let bars = panels.iter().map(|p| p.bars.len()).max().unwrap_or(1);
    let panel_height = 70 + 30 * bars as u32;
    let root =
        SVGBackend::new(path, (WIDTH, 50 + panel_height * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root.titled(title, (FONT, 20)).map_err(draw_error)?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let count = panel.bars.len() as u32;
        // Room on the right for the value written after the longest bar.
        let max = panel
            .bars
            .iter()
            .map(|bar| bar.range.map_or(bar.value, |(_, hi)| hi.max(bar.value)))
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.18;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(230)
            // An integer range includes its end: `0..count - 1` is `count` rows.
            .build_cartesian_2d(0.0..max, (0..count.saturating_sub(1)).into_segmented())
            .map_err(draw_error)?;
        // Index 0 is at the bottom: the first server goes on top.
        let label_of = |value: &SegmentValue<u32>| match value {
            SegmentValue::CenterOf(index) if *index < count => {
                panel.bars[(count - 1 - index) as usize].label.to_owned()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(count as usize)
            .y_label_formatter(&label_of)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc(unit)
            .label_style((FONT, 13))
            .draw()
            .map_err(draw_error)?;
        let row = |index: usize| count - 1 - index as u32;
        chart
            .draw_series(panel.bars.iter().enumerate().map(|(index, bar)| {
                let y = row(index);
                let mut rectangle = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (bar.value, SegmentValue::Exact(y + 1)),
                    ],
                    bar.color.filled(),
                );
                rectangle.set_margin(5, 5, 0, 0);
                rectangle
            }))
            .map_err(draw_error)?;
        chart
            .draw_series(panel.bars.iter().enumerate().filter_map(|(index, bar)| {
                let (lo, hi) = bar.range?;
                let y = SegmentValue::CenterOf(row(index));
                Some(PathElement::new(
                    vec![(lo, y.clone()), (hi, y)],
                    BLACK.stroke_width(2),
                ))
            }))
            .map_err(draw_error)?;
        let value_style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(panel.bars.iter().enumerate().map(|(index, bar)| {
                let end = bar.range.map_or(bar.value, |(_, hi)| hi.max(bar.value));
                EmptyElement::at((end, SegmentValue::CenterOf(row(index))))
                    + Text::new(
                        format!("{:.*}", decimals, bar.value),
                        (6, 0),
                        value_style.clone(),
                    )
            }))
            .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

/// The memory check: the server's RSS after each batch of requests.
pub fn memory(result: &MemoryResult, path: &Path) -> anyhow::Result<Chart> {
    let chart_info = Chart {
        title: format!(
            "Server RSS, MiB, while {} sessions are created then each read once, cache bound \
             {} entries",
            result.params.sessions, result.params.cache_entries
        ),
        path: path.to_owned(),
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let points: Vec<(f64, f64)> = result
        .samples
        .iter()
        .map(|sample| (sample.requests as f64, mib(sample.rss_kib)))
        .collect();
    let max_x = points.last().map_or(1.0, |p| p.0).max(1.0);
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;

    let root = SVGBackend::new(path, (WIDTH, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&chart_info.title, (FONT, 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("requests answered (logins, then reads)")
        .y_desc("VmRSS, MiB")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .label_style((FONT, 13))
        .draw()
        .map_err(draw_error)?;
    // Where the cache filled up, and where the reads start.
    let marks = [
        (result.cache_full_sessions as f64, "cache full"),
        (result.params.sessions as f64, "reads start"),
    ];
    let mark_style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
    for (x, label) in marks {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, max_y)],
                RGBColor(160, 160, 160).stroke_width(1),
            )))
            .map_err(draw_error)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, max_y)) + Text::new(label, (4, 4), mark_style.clone()),
            ))
            .map_err(draw_error)?;
    }
    let red = color(ServerKind::Ours);
    chart
        .draw_series(LineSeries::new(points.iter().copied(), red.stroke_width(2)))
        .map_err(draw_error)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, red.filled())),
        )
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(chart_info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryParams, MemorySample};
    use crate::report::tests::{report, results};

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bench-charts-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn results_charts_show_every_server_in_every_scenario() {
        let report = report(vec![
            (
                ServerKind::TowerMoka,
                vec![results(1000.0, 20.0, 0), results(1100.0, 21.0, 0)],
            ),
            (
                ServerKind::Ours,
                vec![results(1500.0, 18.0, 0), results(1400.0, 19.0, 0)],
            ),
        ]);
        let dir = scratch_dir("results");
        let charts = super::results(&report, &dir.join("latest.md")).unwrap();
        let names: Vec<String> = charts.iter().map(Chart::file_name).collect();
        assert_eq!(names, ["latest-rps.svg", "latest-cpu.svg"]);
        let svg = std::fs::read_to_string(&charts[0].path).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("tower-sessions + moka") && svg.contains("ours, axum"));
        for scenario in Scenario::ALL {
            assert!(
                svg.contains(scenario.title()),
                "{} missing",
                scenario.title()
            );
        }
        // The median round's value is written beside its bar.
        assert!(svg.contains("\n1500\n</text>"), "{svg}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_memory_chart_marks_the_full_cache() {
        let memory = |rss_kib| crate::machine::ProcessMemory {
            rss_kib,
            peak_kib: rss_kib,
        };
        let result = MemoryResult {
            params: MemoryParams {
                sessions: 20,
                cache_entries: 5,
                connections: 2,
            },
            before: memory(1000),
            cache_full: memory(2000),
            cache_full_sessions: 5,
            after_creates: memory(2100),
            after: memory(2200),
            samples: (0..=8)
                .map(|i| MemorySample {
                    requests: i * 5,
                    rss_kib: 1000 + 150 * i,
                })
                .collect(),
            stored_sessions: 20,
            errors: 0,
            elapsed_s: 1.0,
        };
        let dir = scratch_dir("memory");
        let chart = super::memory(&result, &path_next_to(&dir.join("memory.md"), "rss")).unwrap();
        assert_eq!(chart.file_name(), "memory-rss.svg");
        assert!(chart.title.contains("20 sessions") && chart.title.contains("5 entries"));
        let svg = std::fs::read_to_string(&chart.path).unwrap();
        assert!(
            svg.contains("cache full") && svg.contains("reads start"),
            "{svg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
