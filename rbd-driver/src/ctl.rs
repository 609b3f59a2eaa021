//! Cancellation and progress for one driver operation.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where a long operation is: `done` of `total` units (librbd reports objects or bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressReport {
    /// Units done.
    pub done: u64,
    /// Units in all; 0 until the operation knows.
    pub total: u64,
}

/// The sending side of a progress channel; the caller keeps the receiver.
#[derive(Debug, Clone)]
pub struct Progress(Arc<watch::Sender<ProgressReport>>);

impl Progress {
    /// A progress sender and the receiver the caller reads (`borrow()` or `changed()`).
    pub fn channel() -> (Progress, watch::Receiver<ProgressReport>) {
        let (tx, rx) = watch::channel(ProgressReport::default());
        (Progress(Arc::new(tx)), rx)
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        self.0.send_replace(ProgressReport { done, total });
    }
}

/// Controls one operation: a token that cancels it (waiting for a pool slot, and long
/// librbd calls through their progress callbacks) and an optional progress channel.
#[derive(Debug, Clone, Default)]
pub struct OpCtl {
    /// Cancels the operation. Short calls that already started run to completion.
    pub cancel: CancellationToken,
    /// Receives progress of long calls.
    pub progress: Option<Progress>,
}

impl OpCtl {
    /// A control that is never cancelled and reports nowhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// A control cancelled by `cancel` (pass a child token to scope it).
    pub fn with_cancel(cancel: CancellationToken) -> Self {
        OpCtl {
            cancel,
            progress: None,
        }
    }

    /// Adds a progress sender.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        if let Some(p) = &self.progress {
            p.report(done, total);
        }
    }
}
