//! Open images, image options, and everything done through an open image.

use std::marker::PhantomData;

use libc::{c_char, c_int};

use super::{cstr, from_buf, from_cstr, rbd_call, with_progress, DiffCallback, PoolIo};
use crate::ctl::OpCtl;
use crate::error::{Error, Result};
use crate::types::{ChildInfo, ParentInfo, SnapInfo, SnapNamespace, Watcher};

/// `rbd_image_options_t`, destroyed on drop.
pub(crate) struct ImageOptions {
    raw: rbd_sys::rbd_image_options_t,
}

impl ImageOptions {
    /// Wraps `rbd_image_options_create`.
    pub(crate) fn new() -> Self {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        unsafe { rbd_sys::rbd_image_options_create(&mut raw) };
        ImageOptions { raw }
    }

    /// Options for a new image: object order, and features and data pool when given
    /// (otherwise librbd takes `rbd_default_features` and no data pool).
    pub(crate) fn for_new_image(
        order: Option<u8>,
        features: Option<u64>,
        data_pool: Option<&str>,
    ) -> Result<Self> {
        let mut o = ImageOptions::new();
        if let Some(order) = order {
            o.set_u64(rbd_sys::RBD_IMAGE_OPTION_ORDER, order as u64)?;
        }
        if let Some(f) = features {
            o.set_u64(rbd_sys::RBD_IMAGE_OPTION_FEATURES, f)?;
        }
        if let Some(dp) = data_pool {
            o.set_str(rbd_sys::RBD_IMAGE_OPTION_DATA_POOL, dp)?;
        }
        Ok(o)
    }

    /// Wraps `rbd_image_options_set_uint64`.
    pub(crate) fn set_u64(&mut self, opt: c_int, value: u64) -> Result<()> {
        // SAFETY: live options handle.
        rbd_call!(
            "rbd_image_options_set_uint64",
            format!("option {opt}"),
            unsafe { rbd_sys::rbd_image_options_set_uint64(self.raw, opt, value) }
        )?;
        Ok(())
    }

    /// Wraps `rbd_image_options_set_string`.
    pub(crate) fn set_str(&mut self, opt: c_int, value: &str) -> Result<()> {
        let v = cstr(value, "option value")?;
        // SAFETY: live options handle and C string (copied by librbd).
        rbd_call!(
            "rbd_image_options_set_string",
            format!("option {opt}"),
            unsafe { rbd_sys::rbd_image_options_set_string(self.raw, opt, v.as_ptr()) }
        )?;
        Ok(())
    }
}

impl Drop for ImageOptions {
    fn drop(&mut self) {
        // SAFETY: created by rbd_image_options_create, destroyed once.
        unsafe { rbd_sys::rbd_image_options_destroy(self.raw) };
    }
}

impl PoolIo {
    /// Wraps `rbd_create4`.
    pub(crate) fn create(&self, name: &str, size: u64, opts: &ImageOptions) -> Result<()> {
        let n = cstr(name, "image name")?;
        // SAFETY: valid ioctx, C string and options handle.
        rbd_call!("rbd_create4", self.target(name), unsafe {
            rbd_sys::rbd_create4(self.raw(), n.as_ptr(), size, opts.raw)
        })?;
        Ok(())
    }

    /// Wraps `rbd_clone3`: clones `parent_pool/parent@snap` into `self/name`.
    pub(crate) fn clone_from(
        &self,
        parent_pool: &PoolIo,
        parent: &str,
        snap: &str,
        name: &str,
        opts: &ImageOptions,
    ) -> Result<()> {
        let (p, s, n) = (
            cstr(parent, "image name")?,
            cstr(snap, "snapshot name")?,
            cstr(name, "image name")?,
        );
        // SAFETY: valid ioctxs, C strings and options handle.
        rbd_call!("rbd_clone3", self.target(name), unsafe {
            rbd_sys::rbd_clone3(
                parent_pool.raw(),
                p.as_ptr(),
                s.as_ptr(),
                self.raw(),
                n.as_ptr(),
                opts.raw,
            )
        })?;
        Ok(())
    }
}

/// An open image. Closed on drop; borrows its pool so it cannot outlive the ioctx.
pub(crate) struct Image<'p> {
    raw: rbd_sys::rbd_image_t,
    target: String,
    _pool: PhantomData<&'p PoolIo>,
}

/// How to open an image.
#[derive(Clone, Copy)]
pub(crate) enum Open<'a> {
    /// By name, read-write, at HEAD.
    Name(&'a str),
    /// By name, read-only, at a snapshot or HEAD.
    NameReadOnly(&'a str, Option<&'a str>),
    /// By id (works for trashed images), read-only, at a snapshot or HEAD.
    IdReadOnly(&'a str, Option<&'a str>),
}

impl<'p> Image<'p> {
    /// Wraps `rbd_open`, `rbd_open_read_only` and `rbd_open_by_id_read_only`.
    pub(crate) fn open(pool: &'p PoolIo, how: Open<'_>) -> Result<Image<'p>> {
        let mut raw: rbd_sys::rbd_image_t = std::ptr::null_mut();
        let (name, snap) = match how {
            Open::Name(n) => (n, None),
            Open::NameReadOnly(n, s) | Open::IdReadOnly(n, s) => (n, s),
        };
        let target = match snap {
            Some(s) => format!("{}@{}", pool.target(name), s),
            None => pool.target(name),
        };
        let n = cstr(name, "image name")?;
        let s = snap.map(|s| cstr(s, "snapshot name")).transpose()?;
        let sp = s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: valid ioctx, C strings, out pointer; on success `raw` is an open image.
        let r = unsafe {
            match how {
                Open::Name(_) => rbd_sys::rbd_open(pool.raw(), n.as_ptr(), &mut raw, sp),
                Open::NameReadOnly(..) => {
                    rbd_sys::rbd_open_read_only(pool.raw(), n.as_ptr(), &mut raw, sp)
                }
                Open::IdReadOnly(..) => {
                    rbd_sys::rbd_open_by_id_read_only(pool.raw(), n.as_ptr(), &mut raw, sp)
                }
            }
        };
        rbd_call!("rbd_open", target.clone(), r)?;
        Ok(Image {
            raw,
            target,
            _pool: PhantomData,
        })
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Wraps `rbd_stat`.
    pub(crate) fn stat(&self) -> Result<rbd_sys::rbd_image_info_t> {
        // SAFETY: zeroed POD struct filled by librbd.
        let mut info: rbd_sys::rbd_image_info_t = unsafe { std::mem::zeroed() };
        // SAFETY: open image, valid out struct of the size we pass.
        rbd_call!("rbd_stat", self.target.clone(), unsafe {
            rbd_sys::rbd_stat(
                self.raw,
                &mut info,
                std::mem::size_of::<rbd_sys::rbd_image_info_t>(),
            )
        })?;
        Ok(info)
    }

    /// Wraps `rbd_get_id`.
    pub(crate) fn id(&self) -> Result<String> {
        let mut buf = [0 as c_char; 64];
        // SAFETY: open image, buffer of the length we pass.
        rbd_call!("rbd_get_id", self.target.clone(), unsafe {
            rbd_sys::rbd_get_id(self.raw, buf.as_mut_ptr(), buf.len())
        })?;
        Ok(from_buf(&buf))
    }

    /// Wraps `rbd_get_features`.
    pub(crate) fn features(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: open image, valid out pointer.
        rbd_call!("rbd_get_features", self.target.clone(), unsafe {
            rbd_sys::rbd_get_features(self.raw, &mut f)
        })?;
        Ok(f)
    }

    /// Wraps `rbd_get_op_features`.
    pub(crate) fn op_features(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: open image, valid out pointer.
        rbd_call!("rbd_get_op_features", self.target.clone(), unsafe {
            rbd_sys::rbd_get_op_features(self.raw, &mut f)
        })?;
        Ok(f)
    }

    /// Wraps `rbd_resize2` with progress and cancel.
    pub(crate) fn resize(&self, size: u64, allow_shrink: bool, ctl: &OpCtl) -> Result<()> {
        let r = with_progress(ctl, |cb, arg| {
            // SAFETY: open image; callback state outlives the call.
            unsafe { rbd_sys::rbd_resize2(self.raw, size, allow_shrink, cb, arg) }
        });
        rbd_call!("rbd_resize2", self.target.clone(), r)?;
        Ok(())
    }

    /// Wraps `rbd_get_parent`; `None` when the image has no parent.
    pub(crate) fn parent(&self) -> Result<Option<ParentInfo>> {
        // SAFETY: zeroed POD out structs.
        let mut img: rbd_sys::rbd_linked_image_spec_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut snap: rbd_sys::rbd_snap_spec_t = unsafe { std::mem::zeroed() };
        // SAFETY: open image, valid out structs.
        let r = unsafe { rbd_sys::rbd_get_parent(self.raw, &mut img, &mut snap) };
        if r == -libc::ENOENT {
            return Ok(None);
        }
        rbd_call!("rbd_get_parent", self.target.clone(), r)?;
        // SAFETY: on success both structs hold valid strings until cleanup.
        let info = unsafe {
            ParentInfo {
                pool: from_cstr(img.pool_name),
                image: from_cstr(img.image_name),
                image_id: from_cstr(img.image_id),
                snap: from_cstr(snap.name),
                snap_id: snap.id,
                in_trash: img.trash,
            }
        };
        // SAFETY: frees what rbd_get_parent allocated, once.
        unsafe {
            rbd_sys::rbd_linked_image_spec_cleanup(&mut img);
            rbd_sys::rbd_snap_spec_cleanup(&mut snap);
        }
        Ok(Some(info))
    }

    /// Wraps `rbd_list_children3`: the clones of the snapshot this image is open at.
    pub(crate) fn children(&self) -> Result<Vec<ChildInfo>> {
        let mut max: usize = 16;
        loop {
            // SAFETY: zeroed POD entries.
            let mut v: Vec<rbd_sys::rbd_linked_image_spec_t> =
                (0..max).map(|_| unsafe { std::mem::zeroed() }).collect();
            // SAFETY: `v` has room for `max` entries.
            let r = unsafe { rbd_sys::rbd_list_children3(self.raw, v.as_mut_ptr(), &mut max) };
            if r == -libc::ERANGE {
                continue;
            }
            rbd_call!("rbd_list_children3", self.target.clone(), r)?;
            let out = v[..max]
                .iter()
                // SAFETY: the first `max` entries are valid until cleanup.
                .map(|c| unsafe {
                    ChildInfo {
                        pool: from_cstr(c.pool_name),
                        image: from_cstr(c.image_name),
                        image_id: from_cstr(c.image_id),
                        in_trash: c.trash,
                    }
                })
                .collect();
            // SAFETY: frees the first `max` entries.
            unsafe { rbd_sys::rbd_linked_image_spec_list_cleanup(v.as_mut_ptr(), max) };
            return Ok(out);
        }
    }

    /// Wraps `rbd_watchers_list`.
    pub(crate) fn watchers(&self) -> Result<Vec<Watcher>> {
        let mut max: usize = 8;
        loop {
            let mut v = vec![
                rbd_sys::rbd_image_watcher_t {
                    addr: std::ptr::null_mut(),
                    id: 0,
                    cookie: 0
                };
                max
            ];
            // SAFETY: `v` has room for `max` entries.
            let r = unsafe { rbd_sys::rbd_watchers_list(self.raw, v.as_mut_ptr(), &mut max) };
            if r == -libc::ERANGE {
                continue;
            }
            rbd_call!("rbd_watchers_list", self.target.clone(), r)?;
            let out = v[..max]
                .iter()
                // SAFETY: valid until cleanup.
                .map(|w| unsafe {
                    Watcher {
                        addr: from_cstr(w.addr),
                        id: w.id,
                        cookie: w.cookie,
                    }
                })
                .collect();
            // SAFETY: frees the first `max` entries.
            unsafe { rbd_sys::rbd_watchers_list_cleanup(v.as_mut_ptr(), max) };
            return Ok(out);
        }
    }

    /// Wraps `rbd_flatten_with_progress`.
    pub(crate) fn flatten(&self, ctl: &OpCtl) -> Result<()> {
        let r = with_progress(ctl, |cb, arg| {
            // SAFETY: open image; callback state outlives the call.
            unsafe { rbd_sys::rbd_flatten_with_progress(self.raw, cb, arg) }
        });
        rbd_call!("rbd_flatten_with_progress", self.target.clone(), r)?;
        Ok(())
    }

    // ---- snapshots ----

    /// Wraps `rbd_snap_list`, plus namespace and protection of each snapshot.
    pub(crate) fn snapshots(&self) -> Result<Vec<SnapInfo>> {
        let mut max: c_int = 16;
        let raw = loop {
            let mut v = vec![
                rbd_sys::rbd_snap_info_t {
                    id: 0,
                    size: 0,
                    name: std::ptr::null()
                };
                max as usize
            ];
            // SAFETY: `v` has room for `max` entries (librbd also writes an end marker in it).
            let r = unsafe { rbd_sys::rbd_snap_list(self.raw, v.as_mut_ptr(), &mut max) };
            if r == -libc::ERANGE {
                continue;
            }
            let n = rbd_call!("rbd_snap_list", self.target.clone(), r)? as usize;
            // SAFETY: the first `n` entries are valid until rbd_snap_list_end.
            let out: Vec<(u64, u64, String)> = v[..n]
                .iter()
                .map(|s| (s.id, s.size, unsafe { from_cstr(s.name) }))
                .collect();
            // SAFETY: frees the names rbd_snap_list allocated.
            unsafe { rbd_sys::rbd_snap_list_end(v.as_mut_ptr()) };
            break out;
        };
        raw.into_iter()
            .map(|(id, size, name)| {
                let namespace = self.snap_namespace(id)?;
                let protected =
                    matches!(namespace, SnapNamespace::User) && self.snap_is_protected(&name)?;
                Ok(SnapInfo {
                    id,
                    name,
                    size,
                    namespace,
                    protected,
                })
            })
            .collect()
    }

    fn snap_namespace(&self, id: u64) -> Result<SnapNamespace> {
        let mut t: rbd_sys::rbd_snap_namespace_type_t = 0;
        // SAFETY: open image, valid out pointer.
        rbd_call!("rbd_snap_get_namespace_type", self.target.clone(), unsafe {
            rbd_sys::rbd_snap_get_namespace_type(self.raw, id, &mut t)
        })?;
        Ok(match t {
            rbd_sys::RBD_SNAP_NAMESPACE_TYPE_USER => SnapNamespace::User,
            rbd_sys::RBD_SNAP_NAMESPACE_TYPE_GROUP => SnapNamespace::Group,
            rbd_sys::RBD_SNAP_NAMESPACE_TYPE_MIRROR => SnapNamespace::Mirror,
            rbd_sys::RBD_SNAP_NAMESPACE_TYPE_TRASH => {
                let mut buf = [0 as c_char; 4097];
                // SAFETY: buffer of the length we pass.
                rbd_call!(
                    "rbd_snap_get_trash_namespace",
                    self.target.clone(),
                    unsafe {
                        rbd_sys::rbd_snap_get_trash_namespace(
                            self.raw,
                            id,
                            buf.as_mut_ptr(),
                            buf.len(),
                        )
                    }
                )?;
                SnapNamespace::Trash {
                    original_name: from_buf(&buf),
                }
            }
            other => SnapNamespace::Other(other),
        })
    }

    /// Wraps `rbd_snap_exists`.
    pub(crate) fn snap_exists(&self, snap: &str) -> Result<bool> {
        let s = cstr(snap, "snapshot name")?;
        let mut exists = false;
        // SAFETY: open image, C string, out pointer.
        rbd_call!(
            "rbd_snap_exists",
            format!("{}@{snap}", self.target),
            unsafe { rbd_sys::rbd_snap_exists(self.raw, s.as_ptr(), &mut exists) }
        )?;
        Ok(exists)
    }

    /// Wraps `rbd_snap_is_protected`.
    pub(crate) fn snap_is_protected(&self, snap: &str) -> Result<bool> {
        let s = cstr(snap, "snapshot name")?;
        let mut p: c_int = 0;
        // SAFETY: open image, C string, out pointer.
        rbd_call!(
            "rbd_snap_is_protected",
            format!("{}@{snap}", self.target),
            unsafe { rbd_sys::rbd_snap_is_protected(self.raw, s.as_ptr(), &mut p) }
        )?;
        Ok(p != 0)
    }

    /// Wraps `rbd_snap_create2` (skip quiesce: there is no mapped client to quiesce).
    pub(crate) fn snap_create(&self, snap: &str) -> Result<()> {
        let s = cstr(snap, "snapshot name")?;
        // SAFETY: open image, C string, no callback.
        rbd_call!(
            "rbd_snap_create2",
            format!("{}@{snap}", self.target),
            unsafe {
                rbd_sys::rbd_snap_create2(
                    self.raw,
                    s.as_ptr(),
                    rbd_sys::RBD_SNAP_CREATE_SKIP_QUIESCE,
                    None,
                    std::ptr::null_mut(),
                )
            }
        )?;
        Ok(())
    }

    /// Wraps `rbd_snap_remove2`. Under clone v2 a snapshot with clones moves to the trash
    /// namespace instead of failing.
    pub(crate) fn snap_remove(&self, snap: &str, ctl: &OpCtl) -> Result<()> {
        let s = cstr(snap, "snapshot name")?;
        let r = with_progress(ctl, |cb, arg| {
            // SAFETY: open image, C string, callback state that outlives the call.
            unsafe { rbd_sys::rbd_snap_remove2(self.raw, s.as_ptr(), 0, cb, arg) }
        });
        rbd_call!("rbd_snap_remove2", format!("{}@{snap}", self.target), r)?;
        Ok(())
    }

    /// Wraps `rbd_snap_remove_by_id` (for snapshots in the trash namespace).
    pub(crate) fn snap_remove_by_id(&self, id: u64) -> Result<()> {
        // SAFETY: open image.
        rbd_call!(
            "rbd_snap_remove_by_id",
            format!("{}@#{id}", self.target),
            unsafe { rbd_sys::rbd_snap_remove_by_id(self.raw, id) }
        )?;
        Ok(())
    }

    /// Wraps `rbd_snap_rollback_with_progress`.
    pub(crate) fn snap_rollback(&self, snap: &str, ctl: &OpCtl) -> Result<()> {
        let s = cstr(snap, "snapshot name")?;
        let r = with_progress(ctl, |cb, arg| {
            // SAFETY: open image, C string, callback state that outlives the call.
            unsafe { rbd_sys::rbd_snap_rollback_with_progress(self.raw, s.as_ptr(), cb, arg) }
        });
        rbd_call!(
            "rbd_snap_rollback_with_progress",
            format!("{}@{snap}", self.target),
            r
        )?;
        Ok(())
    }

    /// Wraps `rbd_snap_protect`.
    pub(crate) fn snap_protect(&self, snap: &str) -> Result<()> {
        let s = cstr(snap, "snapshot name")?;
        // SAFETY: open image, C string.
        rbd_call!(
            "rbd_snap_protect",
            format!("{}@{snap}", self.target),
            unsafe { rbd_sys::rbd_snap_protect(self.raw, s.as_ptr()) }
        )?;
        Ok(())
    }

    /// Wraps `rbd_snap_unprotect`.
    pub(crate) fn snap_unprotect(&self, snap: &str) -> Result<()> {
        let s = cstr(snap, "snapshot name")?;
        // SAFETY: open image, C string.
        rbd_call!(
            "rbd_snap_unprotect",
            format!("{}@{snap}", self.target),
            unsafe { rbd_sys::rbd_snap_unprotect(self.raw, s.as_ptr()) }
        )?;
        Ok(())
    }

    // ---- I/O ----

    /// Wraps `rbd_read2`: reads exactly `buf.len()` bytes (short reads past the end are
    /// zero-filled by librbd up to the image size).
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: open image, buffer of the length we pass.
        let r = unsafe {
            rbd_sys::rbd_read2(
                self.raw,
                offset,
                buf.len(),
                buf.as_mut_ptr() as *mut c_char,
                rbd_sys::LIBRADOS_OP_FLAG_FADVISE_NOCACHE,
            )
        };
        Ok(rbd_call!("rbd_read2", self.target.clone(), r)? as usize)
    }

    /// Wraps `rbd_write2`.
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        // SAFETY: open image, buffer of the length we pass.
        let r = unsafe {
            rbd_sys::rbd_write2(
                self.raw,
                offset,
                data.len(),
                data.as_ptr() as *const c_char,
                0,
            )
        };
        let n = rbd_call!("rbd_write2", self.target.clone(), r)? as usize;
        if n != data.len() {
            return Err(Error::Unexpected(format!(
                "short write to {}: {n} of {}",
                self.target,
                data.len()
            )));
        }
        Ok(())
    }

    /// Wraps `rbd_discard`, in steps of 1 GiB (it reports the length as an int).
    pub(crate) fn discard(&self, offset: u64, len: u64) -> Result<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(1 << 30);
            // SAFETY: open image.
            rbd_call!("rbd_discard", self.target.clone(), unsafe {
                rbd_sys::rbd_discard(self.raw, offset + done, n)
            })?;
            done += n;
        }
        Ok(())
    }

    /// Whether HEAD differs from `since` (or, without `since`, holds any data, the
    /// parent's included), by a whole-object diff that stops at the first extent.
    pub(crate) fn has_changes(&self, since: Option<&str>) -> Result<bool> {
        const FOUND: c_int = -libc::EEXIST;
        let size = self.stat()?.size;
        let mut cb =
            |_off: u64, _len: u64, exists: bool| if exists || since.is_some() { FOUND } else { 0 };
        match self.diff_iterate(since, size, true, &mut cb) {
            Ok(()) => Ok(false),
            Err(Error::Rbd { errno, .. }) if errno == libc::EEXIST => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Wraps `rbd_flush`.
    pub(crate) fn flush(&self) -> Result<()> {
        // SAFETY: open image.
        rbd_call!("rbd_flush", self.target.clone(), unsafe {
            rbd_sys::rbd_flush(self.raw)
        })?;
        Ok(())
    }

    /// Wraps `rbd_aio_read2` into `buf`; the caller keeps `buf` alive and unmoved until
    /// the completion is waited for (or dropped, which waits).
    pub(crate) fn aio_read(
        &self,
        offset: u64,
        buf: &mut [u8],
        c: &mut super::Completion,
    ) -> Result<()> {
        // SAFETY: open image; `buf` outlives the I/O as the caller promises.
        let r = unsafe {
            rbd_sys::rbd_aio_read2(
                self.raw,
                offset,
                buf.len(),
                buf.as_mut_ptr() as *mut c_char,
                c.raw(),
                rbd_sys::LIBRADOS_OP_FLAG_FADVISE_NOCACHE,
            )
        };
        if r < 0 {
            c.never_submitted();
        }
        rbd_call!("rbd_aio_read2", self.target.clone(), r)?;
        Ok(())
    }

    /// Wraps `rbd_aio_write2`; same buffer rule as [`Image::aio_read`].
    pub(crate) fn aio_write(
        &self,
        offset: u64,
        data: &[u8],
        c: &mut super::Completion,
    ) -> Result<()> {
        // SAFETY: open image; `data` outlives the I/O as the caller promises.
        let r = unsafe {
            rbd_sys::rbd_aio_write2(
                self.raw,
                offset,
                data.len(),
                data.as_ptr() as *const c_char,
                c.raw(),
                rbd_sys::LIBRADOS_OP_FLAG_FADVISE_NOCACHE,
            )
        };
        if r < 0 {
            c.never_submitted();
        }
        rbd_call!("rbd_aio_write2", self.target.clone(), r)?;
        Ok(())
    }

    /// Wraps `rbd_aio_write_zeroes`.
    pub(crate) fn aio_write_zeroes(
        &self,
        offset: u64,
        len: u64,
        c: &mut super::Completion,
    ) -> Result<()> {
        // SAFETY: open image; no buffer involved.
        let r = unsafe {
            rbd_sys::rbd_aio_write_zeroes(
                self.raw,
                offset,
                len as usize,
                c.raw(),
                0,
                rbd_sys::LIBRADOS_OP_FLAG_FADVISE_NOCACHE,
            )
        };
        if r < 0 {
            c.never_submitted();
        }
        rbd_call!("rbd_aio_write_zeroes", self.target.clone(), r)?;
        Ok(())
    }

    /// Wraps `rbd_diff_iterate2` over `[0, len)`; `f(offset, length, exists)` returns 0
    /// to go on or a negative errno to stop (which becomes the call's result). An empty
    /// range has no extents and is not asked: Pacific's librbd (16.2.15) aborts the
    /// process on one when the image has fast-diff (`ceph_assert(object_diff_state.size()
    /// == end_object_no - start_object_no)` in `DiffIterate::execute`, Ceph tracker
    /// 63770), which every restore onto an emptied image would hit.
    pub(crate) fn diff_iterate(
        &self,
        from_snap: Option<&str>,
        len: u64,
        whole_object: bool,
        f: &mut dyn FnMut(u64, u64, bool) -> c_int,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let from = from_snap.map(|s| cstr(s, "snapshot name")).transpose()?;
        let mut cb = DiffCallback::new(f);
        // SAFETY: open image, optional C string, callback state that outlives the call.
        let r = unsafe {
            rbd_sys::rbd_diff_iterate2(
                self.raw,
                from.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                0,
                len,
                1,
                whole_object as u8,
                DiffCallback::trampoline(),
                &mut cb as *mut DiffCallback<'_> as *mut libc::c_void,
            )
        };
        cb.finish();
        rbd_call!("rbd_diff_iterate2", self.target.clone(), r)?;
        Ok(())
    }
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by rbd_open*, closed exactly once.
        unsafe { rbd_sys::rbd_close(self.raw) };
    }
}
