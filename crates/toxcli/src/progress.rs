//! Progress of `score`: a progress bar on a terminal, periodic plain log lines
//! otherwise (a log file, a batch job).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is printed when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Reports scored texts.
#[derive(Debug)]
pub struct ScoreProgress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl ScoreProgress {
    /// Starts reporting; `total` is the number of texts expected, if known.
    pub fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{spinner} scoring [{bar:40}] {pos}/{len} texts, {per_sec}, eta {eta}"
            } else {
                "{spinner} scoring {pos} texts, {per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Self { bar, total, done: 0, started: now, last_log: now }
    }

    /// Counts texts whose scores were committed.
    pub fn add(&mut self, n_texts: u64) {
        self.done += n_texts;
        match &self.bar {
            Some(bar) => bar.inc(n_texts),
            None => {
                if self.last_log.elapsed() >= LOG_INTERVAL {
                    self.last_log = Instant::now();
                    eprintln!("{}", self.line());
                }
            }
        }
    }

    /// Texts committed so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Texts per second since the start.
    pub fn rate(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 { self.done as f64 / seconds } else { 0.0 }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self) -> String {
        let rate = self.rate();
        match self.total {
            Some(total) if total > 0 => {
                let left = total.saturating_sub(self.done);
                let eta =
                    if rate > 0.0 { format_duration(Duration::from_secs_f64(left as f64 / rate)) } else { "?".into() };
                format!(
                    "scored {}/{} texts ({:.1}%), {:.1} texts/s, eta {eta}",
                    self.done,
                    total,
                    100.0 * self.done as f64 / total as f64,
                    rate
                )
            }
            _ => format!("scored {} texts, {:.1} texts/s", self.done, rate),
        }
    }
}

/// `1h 02m 03s`, `2m 03s`, `3s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m {seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}
