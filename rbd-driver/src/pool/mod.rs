//! The only place where async code hands work to blocking librbd/librados calls.
//!
//! Two lanes of dedicated, named OS threads (`rbd-short-N`, `rbd-long-N`), neither the
//! async runtime's workers nor tokio's shared blocking pool. Short metadata calls (open,
//! stat, snapshot, clone) and long data-moving calls (flatten, purge, rollback, diff) have
//! separate budgets, so a queue of flattens never delays a connection-info call.
//!
//! Each lane has as many permits as threads. A caller waits for a permit on a semaphore,
//! where waiting is cancellable and counted (queue depth); the permit travels with the job
//! and is released when the job ends on its thread, even if the caller stopped waiting.
//! Started work cannot be aborted from outside: long calls poll their `OpCtl` through
//! librbd's progress callbacks and stop themselves.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Which budget a call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Metadata calls that finish in milliseconds.
    Short,
    /// Calls whose time grows with the data: flatten, purge, resize, rollback, diff, copy.
    Long,
}

/// A snapshot of one lane's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneStats {
    /// Threads (and permits) in the lane.
    pub threads: usize,
    /// Jobs running now.
    pub running: usize,
    /// Callers waiting for a permit.
    pub waiting: usize,
}

/// Load of both lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// The short lane.
    pub short: LaneStats,
    /// The long lane.
    pub long: LaneStats,
}

struct LaneInner {
    threads: usize,
    permits: Arc<Semaphore>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
}

impl LaneInner {
    fn start(name: &str, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let rx = rx.clone();
            let running = running.clone();
            std::thread::Builder::new()
                .name(format!("rbd-{name}-{i}"))
                .spawn(move || loop {
                    // The lock is held only while taking a job, never while running one.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            running.fetch_add(1, Ordering::Relaxed);
                            job();
                            running.fetch_sub(1, Ordering::Relaxed);
                        }
                        Err(_) => return, // the pool was dropped
                    }
                })?;
        }
        Ok(LaneInner {
            threads,
            permits: Arc::new(Semaphore::new(threads)),
            sender: Mutex::new(Some(tx)),
            waiting: AtomicUsize::new(0),
            running,
        })
    }

    fn stats(&self) -> LaneStats {
        LaneStats {
            threads: self.threads,
            running: self.running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Decrements the waiting count however the wait ends (permit, cancel, or drop).
struct WaitGuard<'a>(&'a AtomicUsize);
impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bounded blocking pool with a short and a long lane. Cheap to share behind an `Arc`.
pub struct BlockingPool {
    short: LaneInner,
    long: LaneInner,
}

impl BlockingPool {
    /// Starts `short_threads` + `long_threads` named threads.
    pub fn new(short_threads: usize, long_threads: usize) -> Result<Self> {
        let start = |name: &str, n: usize| {
            LaneInner::start(name, n.max(1))
                .map_err(|e| Error::Unexpected(format!("cannot start rbd-{name} threads: {e}")))
        };
        Ok(BlockingPool {
            short: start("short", short_threads)?,
            long: start("long", long_threads)?,
        })
    }

    fn lane(&self, lane: Lane) -> &LaneInner {
        match lane {
            Lane::Short => &self.short,
            Lane::Long => &self.long,
        }
    }

    /// Current load of both lanes.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            short: self.short.stats(),
            long: self.long.stats(),
        }
    }

    /// Runs `f` on a thread of `lane`, after waiting (cancellably) for a permit. The
    /// caller's tracing span is entered on the thread. A panic in `f` comes back as
    /// [`Error::Panicked`].
    pub async fn run<T, F>(&self, lane: Lane, cancel: &CancellationToken, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let inner = self.lane(lane);
        let permit = {
            inner.waiting.fetch_add(1, Ordering::Relaxed);
            let _waiting = WaitGuard(&inner.waiting);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                p = inner.permits.clone().acquire_owned() => p.map_err(|_| Error::PoolClosed)?,
            }
        };
        let (tx, rx) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let r = catch_unwind(AssertUnwindSafe(|| span.in_scope(f)));
            let _ = tx.send(r.map_err(panic_message));
        });
        {
            let sender = inner.sender.lock().map_err(|_| Error::PoolClosed)?;
            sender
                .as_ref()
                .ok_or(Error::PoolClosed)?
                .send(job)
                .map_err(|_| Error::PoolClosed)?;
        }
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(msg)) => Err(Error::Panicked(msg)),
            Err(_) => Err(Error::PoolClosed),
        }
    }

    /// Stops taking work: queued callers get [`Error::PoolClosed`]; threads exit after
    /// their current job.
    pub fn close(&self) {
        for lane in [&self.short, &self.long] {
            lane.permits.close();
            if let Ok(mut s) = lane.sender.lock() {
                s.take();
            }
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.close();
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

#[cfg(test)]
mod tests;
