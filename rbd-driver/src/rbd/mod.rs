//! The safe wrapper over librbd (and the librados calls the `ceph` crate lacks).
//!
//! Synchronous and blocking, 1:1 with the C calls, and the only module with `unsafe`.
//! RAII only: images, options and completions free themselves in `Drop`; there are no
//! close/destroy methods. Children borrow their parent (`Image<'p>` borrows its `PoolIo`),
//! so a handle can never outlive what it came from. This module never logs: it returns
//! errors that name the C call and its target, and callers log once.

mod aio;
mod callback;
mod cluster;
mod image;

pub(crate) use aio::Completion;
pub(crate) use callback::{with_progress, DiffCallback};
pub(crate) use cluster::{Cluster, CommandTarget, PoolIo};
pub(crate) use image::{Image, ImageOptions, Open};

use std::ffi::{CStr, CString};

use libc::c_char;

use crate::error::{Error, Result};

/// Calls a C function returning a negative errno on failure, and turns that into
/// [`Error::Rbd`] naming the call and its target.
macro_rules! rbd_call {
    ($op:literal, $target:expr, $call:expr) => {{
        let r = $call;
        if r < 0 {
            Err($crate::error::Error::rbd($op, $target, -(r as i32)))
        } else {
            Ok(r)
        }
    }};
}
pub(crate) use rbd_call;

/// A C string for a name we pass to Ceph; interior NULs are an invalid argument.
pub(crate) fn cstr(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidArgument(format!("{what} {s:?} contains a NUL byte")))
}

/// Copies a C string Ceph returned; NULL reads as empty.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for the call.
pub(crate) unsafe fn from_cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: the caller promises a valid NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Copies a NUL-terminated string out of a fixed buffer.
pub(crate) fn from_buf(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
