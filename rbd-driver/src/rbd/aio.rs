//! librbd asynchronous I/O completions, waited on from the same blocking thread.

use libc::c_void;

use crate::error::{Error, Result};

unsafe extern "C" fn noop_complete(_c: rbd_sys::rbd_completion_t, _arg: *mut c_void) {}

/// One `rbd_completion_t`. Dropping it waits for the I/O to finish before releasing it,
/// so a buffer declared after it in a struct (dropped later) outlives the I/O.
pub(crate) struct Completion {
    raw: rbd_sys::rbd_completion_t,
    waited: bool,
}

impl Completion {
    /// Wraps `rbd_aio_create_completion`.
    pub(crate) fn new() -> Result<Self> {
        let mut raw: rbd_sys::rbd_completion_t = std::ptr::null_mut();
        // SAFETY: creates a completion with a no-op callback; `raw` is a valid out pointer.
        let r = unsafe {
            rbd_sys::rbd_aio_create_completion(std::ptr::null_mut(), Some(noop_complete), &mut raw)
        };
        if r < 0 {
            return Err(Error::rbd("rbd_aio_create_completion", "", -r));
        }
        Ok(Completion { raw, waited: false })
    }

    pub(crate) fn raw(&self) -> rbd_sys::rbd_completion_t {
        self.raw
    }

    /// Wraps `rbd_aio_is_complete`.
    pub(crate) fn is_complete(&self) -> bool {
        // SAFETY: `raw` is a live completion owned by self.
        unsafe { rbd_sys::rbd_aio_is_complete(self.raw) != 0 }
    }

    /// Waits (`rbd_aio_wait_for_complete`) and returns `rbd_aio_get_return_value`.
    pub(crate) fn wait(&mut self) -> isize {
        // SAFETY: `raw` is a live completion owned by self.
        unsafe {
            rbd_sys::rbd_aio_wait_for_complete(self.raw);
            self.waited = true;
            rbd_sys::rbd_aio_get_return_value(self.raw)
        }
    }

    /// Marks a completion whose submission failed: librbd never started I/O on it.
    pub(crate) fn never_submitted(&mut self) {
        self.waited = true;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.waited {
            self.wait();
        }
        // SAFETY: the I/O has finished (or never started); nobody uses `raw` after this.
        unsafe { rbd_sys::rbd_aio_release(self.raw) };
    }
}
