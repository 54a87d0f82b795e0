//! Copy progress like skopeo's: bars per blob on a terminal, plain lines
//! otherwise, nothing with `-q` (no reporter at all).

use crate::copy::{Progress, ProgressEvent};
use crate::digest::Digest;
use crate::manifest::media;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};

/// The reporter for this process's stdout.
pub fn reporter() -> Arc<dyn Progress> {
    if std::io::stdout().is_terminal() {
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
        })
    } else {
        Arc::new(Lines {
            config: Mutex::new(HashMap::new()),
        })
    }
}

fn kind(media_type: &str) -> &'static str {
    if media_type == media::DOCKER_CONFIG || media_type == media::OCI_CONFIG || media_type.contains("config") {
        "config"
    } else {
        "blob"
    }
}

fn line(s: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}

struct Lines {
    config: Mutex<HashMap<Digest, &'static str>>,
}

impl Progress for Lines {
    fn event(&self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::CopyingImages { count, total } => {
                line(format!("Copying {count} images generated from {total} images in list"))
            }
            ProgressEvent::Image { digest, n, count } => line(format!("Copying image {digest} ({n}/{count})")),
            ProgressEvent::BlobStart { info } => {
                self.config
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(info.digest.clone(), kind(&info.media_type));
            }
            ProgressEvent::BlobDone { digest, reused } => {
                let k = self
                    .config
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(digest)
                    .copied()
                    .unwrap_or("blob");
                if reused {
                    line(format!("Copying {k} {digest} skipped: already exists"));
                } else {
                    line(format!("Copying {k} {digest} done"));
                }
            }
            ProgressEvent::WritingManifest => line("Writing manifest to image destination".into()),
            ProgressEvent::Note(n) => line(n.to_string()),
            ProgressEvent::BlobBytes { .. } | ProgressEvent::BlobRestart { .. } | ProgressEvent::ImageBlobs { .. } => {}
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn event(&self, event: ProgressEvent<'_>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            ProgressEvent::BlobStart { info } => {
                let bar = self.multi.add(ProgressBar::new(info.size.unwrap_or(0)));
                let style = ProgressStyle::with_template(
                    "Copying {prefix} {wide_bar} {binary_bytes} / {binary_total_bytes} | {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                let short: String = info.digest.hex().chars().take(12).collect();
                bar.set_prefix(format!("{} {short}", kind(&info.media_type)));
                bars.insert(info.digest.clone(), bar);
            }
            ProgressEvent::BlobBytes { digest, bytes } => {
                if let Some(b) = bars.get(digest) {
                    b.inc(bytes);
                }
            }
            ProgressEvent::BlobRestart { digest } => {
                if let Some(b) = bars.get(digest) {
                    b.set_position(0);
                }
            }
            ProgressEvent::BlobDone { digest, reused } => {
                if let Some(b) = bars.get(digest) {
                    let style = ProgressStyle::with_template("Copying {prefix} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                    b.set_style(style);
                    b.finish_with_message(if reused { "skipped: already exists" } else { "done" });
                }
            }
            ProgressEvent::CopyingImages { count, total } => {
                let _ = self
                    .multi
                    .println(format!("Copying {count} images generated from {total} images in list"));
            }
            ProgressEvent::Image { digest, n, count } => {
                let _ = self.multi.println(format!("Copying image {digest} ({n}/{count})"));
            }
            ProgressEvent::WritingManifest => {
                let _ = self.multi.println("Writing manifest to image destination");
            }
            ProgressEvent::Note(n) => {
                let _ = self.multi.println(n);
            }
            ProgressEvent::ImageBlobs { .. } => {}
        }
    }
}
