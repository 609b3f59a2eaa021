//! `extern "C"` trampolines for librbd callbacks. They (a) poll the operation's cancel
//! flag and return `-ECANCELED` so librbd aborts, and (b) trap panics from Rust code so
//! none unwinds through C, re-raising them once the C call has returned.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use libc::{c_int, c_void};

use crate::ctl::OpCtl;

struct ProgressCtx<'a> {
    ctl: &'a OpCtl,
    panic: Option<Box<dyn Any + Send>>,
}

unsafe extern "C" fn progress_trampoline(offset: u64, total: u64, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ProgressCtx` that `with_progress` keeps alive and exclusively
    // lends to librbd for the duration of the call; librbd calls back on one thread at a time.
    let ctx = unsafe { &mut *(arg as *mut ProgressCtx<'_>) };
    if ctx.panic.is_some() {
        return -libc::ECANCELED;
    }
    match catch_unwind(AssertUnwindSafe(|| {
        ctx.ctl.report(offset, total);
        ctx.ctl.is_cancelled()
    })) {
        Ok(false) => 0,
        Ok(true) => -libc::ECANCELED,
        Err(p) => {
            ctx.panic = Some(p);
            -libc::ECANCELED
        }
    }
}

/// Calls `f` with a progress callback and its argument. If the operation was cancelled
/// and the call failed, the result is `-ECANCELED` (mapped to `Error::Cancelled`).
pub(crate) fn with_progress(
    ctl: &OpCtl,
    f: impl FnOnce(rbd_sys::librbd_progress_fn_t, *mut c_void) -> c_int,
) -> c_int {
    let mut ctx = ProgressCtx { ctl, panic: None };
    let r = f(
        Some(progress_trampoline),
        &mut ctx as *mut ProgressCtx<'_> as *mut c_void,
    );
    if let Some(p) = ctx.panic.take() {
        resume_unwind(p);
    }
    if r < 0 && ctl.is_cancelled() {
        -libc::ECANCELED
    } else {
        r
    }
}

/// State for `rbd_diff_iterate2`'s callback: a closure returning 0 to go on or a
/// negative errno to stop, plus a trapped panic.
pub(crate) struct DiffCallback<'a> {
    f: &'a mut dyn FnMut(u64, u64, bool) -> c_int,
    panic: Option<Box<dyn Any + Send>>,
}

impl<'a> DiffCallback<'a> {
    pub(crate) fn new(f: &'a mut dyn FnMut(u64, u64, bool) -> c_int) -> Self {
        DiffCallback { f, panic: None }
    }

    pub(crate) fn trampoline() -> rbd_sys::rbd_diff_cb_t {
        Some(diff_trampoline)
    }

    /// Re-raises a panic trapped during the call.
    pub(crate) fn finish(self) {
        if let Some(p) = self.panic {
            resume_unwind(p);
        }
    }
}

unsafe extern "C" fn diff_trampoline(
    offset: u64,
    len: usize,
    exists: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: `arg` is the `DiffCallback` the caller lends to `rbd_diff_iterate2` for the
    // duration of that call; callbacks are not concurrent.
    let ctx = unsafe { &mut *(arg as *mut DiffCallback<'_>) };
    if ctx.panic.is_some() {
        return -libc::ECANCELED;
    }
    match catch_unwind(AssertUnwindSafe(|| {
        (ctx.f)(offset, len as u64, exists != 0)
    })) {
        Ok(r) => r,
        Err(p) => {
            ctx.panic = Some(p);
            -libc::ECANCELED
        }
    }
}
