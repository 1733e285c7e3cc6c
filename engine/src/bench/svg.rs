//! The `--svg` chart: throughput and resident memory over time, one line
//! per run, written by hand (two panels of polylines, axes and a legend) so
//! that no plotting crate is needed.

use std::fmt::Write as _;

use super::report::{FirehoseReport, RunReport};

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;
const LEGEND_ROW: f64 = 18.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Events per second between consecutive samples, at each interval's end.
fn throughput(run: &RunReport) -> Vec<(f64, f64)> {
    run.samples
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].t_secs - w[0].t_secs;
            (dt > 1e-6).then(|| {
                (
                    w[1].t_secs,
                    (w[1].events.saturating_sub(w[0].events)) as f64 / dt,
                )
            })
        })
        .collect()
}

fn run_label(run: &RunReport) -> String {
    let mode = run
        .offered_rate
        .map_or("max".to_string(), |r| format!("{r:.0}/s"));
    format!("{} {} {}", run.store, run.source, mode)
}

/// A round number at or above `max` for an axis, and its 5 tick values.
fn axis(max: f64) -> (f64, [f64; 6]) {
    let max = if max > 0.0 { max } else { 1.0 };
    let magnitude = 10f64.powf(max.log10().floor());
    let top = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = [0.0; 6];
    for (i, t) in ticks.iter_mut().enumerate() {
        *t = top * i as f64 / 5.0;
    }
    (top, ticks)
}

fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel: axes, grid, and a polyline per series.
fn panel(
    out: &mut String,
    top: f64,
    title: &str,
    unit: &str,
    x_max: f64,
    series: &[(usize, Vec<(f64, f64)>)],
) {
    let y_max_data = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (y_top, y_ticks) = axis(y_max_data);
    let (x_top, x_ticks) = axis(x_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + v / x_top * plot_w;
    let y = |v: f64| top + PANEL_HEIGHT - v / y_top * PANEL_HEIGHT;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
        top - 10.0,
        escape(title)
    );
    for t in y_ticks {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" font-size="11" text-anchor="end">{4}{unit}</text>"##,
            y(t),
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(t) + 4.0,
            human(t)
        );
    }
    for t in x_ticks {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{t:.1} s</text>"#,
            x(t),
            top + PANEL_HEIGHT + 16.0
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/>"##
    );
    for (index, points) in series {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            COLORS[index % COLORS.len()],
            path.join(" ")
        );
    }
}

/// The chart of every run of `report`, as an SVG document.
pub fn render(report: &FirehoseReport) -> String {
    let legend_height = LEGEND_ROW * report.runs.len() as f64 + 10.0;
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 40.0 + legend_height;
    let x_max = report
        .runs
        .iter()
        .filter_map(|r| r.samples.last().map(|s| s.t_secs))
        .fold(0.0, f64::max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><title>sluice bench firehose</title>"#
    );
    let rates: Vec<(usize, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| (i, throughput(r)))
        .collect();
    panel(
        &mut out,
        TOP,
        "Events generated per second",
        "",
        x_max,
        &rates,
    );
    let rss: Vec<(usize, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                i,
                r.samples
                    .iter()
                    .map(|s| (s.t_secs, s.rss_bytes as f64))
                    .collect(),
            )
        })
        .collect();
    let second = TOP + PANEL_HEIGHT + GAP;
    panel(
        &mut out,
        second,
        "Resident memory (bytes)",
        "B",
        x_max,
        &rss,
    );
    let legend_top = second + PANEL_HEIGHT + 40.0;
    for (i, run) in report.runs.iter().enumerate() {
        let y = legend_top + LEGEND_ROW * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            LEFT + 24.0,
            COLORS[i % COLORS.len()],
            LEFT + 30.0,
            y + 4.0,
            escape(&run_label(run))
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_rounds_up() {
        assert_eq!(axis(730.0).0, 1000.0);
        assert_eq!(axis(1_200_000.0).0, 2_000_000.0);
        assert_eq!(axis(0.0).0, 1.0);
        assert_eq!(axis(2.5).1[5], 2.5);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b&c>"), "a&lt;b&amp;c&gt;");
    }
}
