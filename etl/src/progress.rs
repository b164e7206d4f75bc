//! Progress: an indicatif bar on a terminal (bytes, rows/s, ETA), periodic tracing log lines
//! otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;

const LOG_EVERY: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub bytes: Arc<AtomicU64>,
    pub rows: Arc<AtomicU64>,
}

#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(mode: ProgressMode, total: Option<u64>, c: &Counters) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Log,
            m => m,
        };
        let handle = match mode {
            ProgressMode::None | ProgressMode::Auto => None,
            ProgressMode::Bar => {
                let bar = match total {
                    Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
                    None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                };
                let style = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                let (stop2, c) = (Arc::clone(&stop), c.clone());
                Some(std::thread::spawn(move || {
                    let start = Instant::now();
                    while !stop2.load(Ordering::Relaxed) {
                        let rows = c.rows.load(Ordering::Relaxed);
                        bar.set_position(c.bytes.load(Ordering::Relaxed));
                        let rate = rows as f64 / start.elapsed().as_secs_f64().max(1e-3);
                        bar.set_message(format!("{rows} rows ({rate:.0} rows/s)"));
                        std::thread::sleep(TICK);
                    }
                    bar.finish_and_clear();
                }))
            }
            ProgressMode::Log => {
                let (stop2, c) = (Arc::clone(&stop), c.clone());
                Some(std::thread::spawn(move || {
                    let start = Instant::now();
                    let mut last = Instant::now();
                    while !stop2.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        if last.elapsed() >= LOG_EVERY {
                            last = Instant::now();
                            let secs = start.elapsed().as_secs_f64();
                            let bytes = c.bytes.load(Ordering::Relaxed);
                            let rows = c.rows.load(Ordering::Relaxed);
                            let pct = total
                                .map(|t| format!("{:.1}%", bytes as f64 * 100.0 / t.max(1) as f64));
                            tracing::info!(
                                bytes,
                                rows,
                                mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs),
                                done = pct.as_deref().unwrap_or("?"),
                                "progress"
                            );
                        }
                    }
                }))
            }
        };
        Progress { stop, handle }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
