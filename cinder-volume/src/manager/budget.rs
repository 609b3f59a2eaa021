//! The budgets a request holds. Every request enters on an intake permit (the short
//! budget, which is also the prefetch). Long work first takes a long permit, while its
//! delivery is still unacknowledged, and gives its intake permit back once the claim is
//! written and the delivery acknowledged: long work queued behind the driver's long
//! lane never holds the slots that short work needs.

use tokio::sync::OwnedSemaphorePermit;

/// How much long work a manager takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongBudgets {
    /// Long requests accepted at once (claimed and acknowledged, or about to be).
    pub accepted: usize,
    /// Long requests running at once; the other accepted ones wait, claimed.
    pub running: usize,
}

/// The permits one request holds.
pub(crate) struct Admission {
    intake: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    long: Option<OwnedSemaphorePermit>,
}

impl Admission {
    pub(crate) fn new(intake: OwnedSemaphorePermit, long: Option<OwnedSemaphorePermit>) -> Self {
        Admission {
            intake: std::sync::Mutex::new(Some(intake)),
            long,
        }
    }

    /// Whether the request holds the long budget.
    pub(crate) fn is_long(&self) -> bool {
        self.long.is_some()
    }

    /// The delivery is acknowledged: long work frees its intake slot.
    pub(crate) fn acknowledged(&self) {
        if self.long.is_some() {
            if let Ok(mut intake) = self.intake.lock() {
                intake.take();
            }
        }
    }
}
