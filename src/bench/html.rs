//! The report a person opens: one self-contained HTML page (inline SVG, no script) with,
//! per value size, a bar of each workload's throughput and CPU ratio against the plaintext
//! baseline, and a table of rates and latency percentiles.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{BenchError, BenchReport, Latency, SizeReport};

const BAR_HEIGHT: usize = 16;
const ROW_HEIGHT: usize = 2 * BAR_HEIGHT + 14;
const LABEL_WIDTH: usize = 170;
const CHART_WIDTH: usize = 420;
/// The least ratio at the right edge of a chart.
const SCALE_MIN: f64 = 1.5;

/// Writes `report` to `dir/index.html` (creating `dir`) and returns that path.
pub fn write_report(report: &BenchReport, dir: &Path) -> Result<PathBuf, BenchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("index.html");
    std::fs::write(&path, page(report)).map_err(io(&path))?;
    Ok(path)
}

fn page(report: &BenchReport) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>atrest bench</title>\n\
         <style>body{font-family:sans-serif;margin:2em;max-width:60em}\
         table{border-collapse:collapse;margin:1em 0}td,th{padding:2px 10px;text-align:right}\
         th:first-child,td:first-child{text-align:left}tr:nth-child(even){background:#f4f4f4}\
         .t{fill:#3465a4}.c{fill:#f57900}</style></head><body>\n",
    );
    let _ = writeln!(
        html,
        "<h1>atrest bench</h1>\n<p>{} records per workload; AES-256-GCM on {}; peak memory \
         {:.0} MB. Each ratio is encrypted ÷ plain RocksDB in the same run: \
         <span style=\"color:#3465a4\">■</span> throughput (higher is better), \
         <span style=\"color:#f57900\">■</span> process CPU time (lower is better).</p>",
        report.count, report.backend, report.peak_rss_mb
    );
    for size in &report.sizes {
        section(&mut html, size);
    }
    html.push_str("</body></html>\n");
    html
}

fn section(html: &mut String, size: &SizeReport) {
    let _ = writeln!(html, "<h2>{} B values</h2>", size.value_size);
    chart(html, size);
    html.push_str(
        "<table><tr><th>workload</th><th>plain ops/s</th><th>encrypted ops/s</th>\
         <th>ratio</th><th>CPU ratio</th><th>plain p50 / p99 / p99.9 µs</th>\
         <th>encrypted p50 / p99 / p99.9 µs</th></tr>\n",
    );
    for w in &size.workloads {
        let latency = |l: Option<&Latency>| {
            l.map_or_else(
                || "—".to_string(),
                |l| format!("{:.1} / {:.1} / {:.1}", l.p50_us, l.p99_us, l.p999_us),
            )
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{}</td><td>{}</td></tr>",
            w.name,
            w.plaintext.ops_per_sec,
            w.encrypted.ops_per_sec,
            w.ratio,
            w.cpu_ratio,
            latency(w.latency.as_ref().map(|l| &l[0])),
            latency(w.latency.as_ref().map(|l| &l[1])),
        );
    }
    let _ = writeln!(
        html,
        "</table>\n<p>Master-key rotation: {:.2} ms. Snapshot: {:.1} MB, created at {:.0} MB/s, \
         restored at {:.0} MB/s.</p>",
        size.master_key_rotation_ms,
        size.snapshot_mb,
        size.snapshot_create_mb_per_sec,
        size.snapshot_restore_mb_per_sec
    );
}

/// Horizontal bars, two per workload, on a scale from 0 to the largest ratio (at least
/// [`SCALE_MIN`]) with a line at 1.
fn chart(html: &mut String, size: &SizeReport) {
    let height = size.workloads.len() * ROW_HEIGHT + 20;
    let width = LABEL_WIDTH + CHART_WIDTH + 60;
    let largest = size
        .workloads
        .iter()
        .flat_map(|w| [w.ratio, w.cpu_ratio])
        .filter(|r| r.is_finite())
        .fold(SCALE_MIN, f64::max);
    let scale = (largest * 2.0).ceil() / 2.0;
    let x = |ratio: f64| LABEL_WIDTH as f64 + ratio.clamp(0.0, scale) / scale * CHART_WIDTH as f64;
    let _ = writeln!(
        html,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-size=\"12\">"
    );
    for (row, w) in size.workloads.iter().enumerate() {
        let top = row * ROW_HEIGHT;
        let _ = writeln!(
            html,
            "<text x=\"0\" y=\"{}\">{}</text>",
            top + BAR_HEIGHT + 4,
            w.name
        );
        for (i, (class, ratio)) in [("t", w.ratio), ("c", w.cpu_ratio)].into_iter().enumerate() {
            let y = top + i * BAR_HEIGHT;
            let end = x(ratio);
            let _ = writeln!(
                html,
                "<rect class=\"{class}\" x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{:.1}\" \
                 height=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{ratio:.2}</text>",
                end - LABEL_WIDTH as f64,
                BAR_HEIGHT - 2,
                end + 4.0,
                y + BAR_HEIGHT - 4,
            );
        }
    }
    let one = x(1.0);
    let _ = writeln!(
        html,
        "<line x1=\"{one:.1}\" y1=\"0\" x2=\"{one:.1}\" y2=\"{}\" stroke=\"#000\" \
         stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\">1.0 = plain</text></svg>",
        height - 16,
        one - 20.0,
        height - 2
    );
}
