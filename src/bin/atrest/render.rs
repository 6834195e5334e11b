//! How results look on a terminal: text or `--json`, progress bars on stderr, and the text
//! of the reports the library does not give a `Display` of its own.

use std::path::PathBuf;

use atrest::control::project::Alert;
use atrest::control::project::DEFAULT_CLUSTER;
use atrest::control::{KeyUsage, KmsSettings, Root, Settings};
use atrest::store::SnapshotListing;
use serde::Serialize;

use crate::CliResult;

/// Text for people, or JSON for programs.
#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON with `--json`, else the text `text` makes.
    pub fn print<T: Serialize>(self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", text());
        }
    }
}

/// A progress bar on stderr, hidden with `--json` or when stderr is not a terminal.
pub fn progress_bar(len: u64, out: Output) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if out.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// A progress spinner of unknown length, drawn with `template`.
pub fn spinner(template: &str, out: Output) -> indicatif::ProgressBar {
    let bar = progress_bar(0, out);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

pub fn initialised(root: &Root, settings: &Settings, nodes: u32) -> String {
    let kms = match settings.kms {
        KmsSettings::Local => "embedded",
        KmsSettings::Aws(_) => "AWS",
    };
    format!(
        "initialised {}\nCMK: {} ({kms} KMS)\nproject {} with encryption at rest; cluster {DEFAULT_CLUSTER} (M10, {nodes} nodes, encrypted)",
        root.dir().display(),
        settings.cmk,
        settings.project.id,
    )
}

pub fn key_usage(usage: &KeyUsage) -> String {
    let mut lines = vec![usage.key_arn.clone()];
    for s in &usage.snapshots {
        lines.push(format!("  snapshot {} taken {}", s.id, s.created));
    }
    for store in &usage.stores {
        lines.push(format!("  store {store}"));
    }
    for id in &usage.damaged_snapshots {
        lines.push(format!(
            "  (snapshot {id} is damaged: the key it names cannot be read; it cannot be restored under any key)"
        ));
    }
    if usage.rotation_in_progress {
        lines.push("  a CMK rotation in progress still needs it".into());
    }
    lines.push(if usage.safe_to_delete {
        "safe to delete: nothing depends on it".into()
    } else {
        "NOT safe to delete: the above would become unreadable".into()
    });
    lines.join("\n")
}

/// Each snapshot as its header claims it (`snapshot verify` authenticates one), then each
/// damaged file.
pub fn snapshots(listing: &SnapshotListing) -> String {
    let mut lines: Vec<String> = listing
        .snapshots
        .iter()
        .map(|s| format!("{}\t{}\t{} B\t{}", s.id, s.created, s.size, s.cmk_arn))
        .collect();
    if !listing.snapshots.is_empty() {
        lines.insert(
            0,
            "as each header says (`atrest snapshot verify ID` authenticates it):".into(),
        );
    }
    for damaged in &listing.damaged {
        let size = damaged.size.map_or("?".into(), |s| s.to_string());
        lines.push(format!(
            "{}\tDAMAGED\t{size} B\t{} (it cannot be restored; `atrest snapshot delete {}` removes it)",
            damaged.id, damaged.reason, damaged.id
        ));
    }
    if lines.is_empty() {
        lines.push("no snapshots".into());
    }
    lines.join("\n")
}

pub fn alerts(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alerts".into();
    }
    alerts
        .iter()
        .map(|a| format!("{}  {}  {}", a.created, a.event_type_name, a.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `atrest bench`: runs the workloads and prints the table of ratios.
pub fn bench(
    value_sizes: Vec<usize>,
    count: u64,
    dir: Option<PathBuf>,
    report_dir: Option<PathBuf>,
    out: Output,
) -> CliResult {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("atrest-bench-{}", std::process::id()))
    });
    let options = atrest::bench::BenchOptions {
        count,
        value_sizes,
        dir,
    };
    let report = atrest::bench::run(&options, &mut |step| {
        if !out.json {
            eprintln!("running {step}");
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(report_dir) = report_dir {
        let page = atrest::bench::write_report(&report, &report_dir).map_err(|e| e.to_string())?;
        if !out.json {
            eprintln!("report: {}", page.display());
        }
    }
    out.print(&report, || {
        let mut lines = vec![format!(
            "{count} records per workload, AES-256-GCM on {}; ratios are encrypted ÷ plain",
            report.backend
        )];
        for size in &report.sizes {
            lines.push(format!(
                "\n{} B values\n{:<22} {:>12} {:>9} {:>15} {:>9} {:>7} {:>9}",
                size.value_size,
                "workload",
                "plain ops/s",
                "MB/s",
                "encrypted ops/s",
                "MB/s",
                "ratio",
                "CPU ratio"
            ));
            for w in &size.workloads {
                lines.push(format!(
                    "{:<22} {:>12.0} {:>9.1} {:>15.0} {:>9.1} {:>7.3} {:>9.3}",
                    w.name,
                    w.plaintext.ops_per_sec,
                    w.plaintext.mb_per_sec,
                    w.encrypted.ops_per_sec,
                    w.encrypted.mb_per_sec,
                    w.ratio,
                    w.cpu_ratio
                ));
            }
            lines.push(format!(
                "master-key rotation: {:.1} ms with {count} records stored",
                size.master_key_rotation_ms
            ));
            lines.push(format!(
                "snapshot: {:.1} MB, created at {:.0} MB/s, restored at {:.0} MB/s",
                size.snapshot_mb, size.snapshot_create_mb_per_sec, size.snapshot_restore_mb_per_sec
            ));
        }
        lines.push(format!("peak memory (RSS): {:.0} MB", report.peak_rss_mb));
        lines.join("\n")
    });
    Ok(())
}
