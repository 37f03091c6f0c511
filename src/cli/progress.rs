//! Progress of long command-line jobs (backup, restore; export and migrations next): a bar per
//! step (indicatif) on a terminal, plain lines otherwise (at most one a second per step, and its
//! last), on standard error so standard output keeps the result.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

use crate::services::jobs::Progress;

pub struct ProgressView {
    terminal: bool,
    bar: Option<ProgressBar>,
    step: String,
    last_line: Option<Instant>,
}

impl Default for ProgressView {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressView {
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            step: String::new(),
            last_line: None,
        }
    }

    pub fn update(&mut self, progress: &Progress) {
        let new_step = progress.step != self.step;
        if new_step {
            self.finish();
            self.step.clone_from(&progress.step);
            if self.terminal {
                let bar = ProgressBar::new(progress.total);
                bar.set_style(
                    ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_message(progress.step.clone());
                self.bar = Some(bar);
            }
        }
        match &self.bar {
            Some(bar) => {
                bar.set_length(progress.total);
                bar.set_position(progress.done);
            }
            None => {
                let complete = progress.total > 0 && progress.done >= progress.total;
                let due = self
                    .last_line
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if new_step || complete || due {
                    eprintln!("{}: {}/{}", progress.step, progress.done, progress.total);
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        self.last_line = None;
    }
}
