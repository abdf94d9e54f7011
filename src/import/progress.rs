//! Progress for the operator: a bar with rate and ETA on a terminal
//! (indicatif), a plain line every few seconds otherwise (logs, CI, pipes).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    None,
}

/// Progress of one phase.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
}

struct Plain {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    pub fn new(mode: ProgressMode, label: &str, total: u64) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{msg:>14} [{bar:30}] {human_pos}/{human_len} {per_sec:>12} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(label.to_string());
                Progress {
                    bar: Some(bar),
                    plain: None,
                }
            }
            ProgressMode::Plain => {
                let now = Instant::now();
                Progress {
                    bar: None,
                    plain: Some(Plain {
                        label: label.to_string(),
                        total,
                        done: 0,
                        started: now,
                        last: now,
                        every: Duration::from_secs(5),
                    }),
                }
            }
            _ => Progress {
                bar: None,
                plain: None,
            },
        }
    }

    /// A line between phases (staging has no count to show as it goes), on
    /// stderr unless progress is off.
    pub fn note(mode: ProgressMode, message: &str) {
        if mode != ProgressMode::None {
            eprintln!("cutover import: {message}");
        }
    }

    pub fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if let Some(p) = &mut self.plain {
            p.done += n;
            if p.last.elapsed() >= p.every {
                p.last = Instant::now();
                eprintln!("{}", p.line());
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if let Some(p) = self.plain.take()
            && p.total > 0
        {
            eprintln!("{}", p.line());
        }
    }
}

impl Plain {
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let pct = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        let eta = if rate > 0.0 {
            format!("{:.0}s", self.total.saturating_sub(self.done) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "cutover import: {} {}/{} ({pct:.1}%), {rate:.0}/s, ETA {eta}",
            self.label, self.done, self.total
        )
    }
}
