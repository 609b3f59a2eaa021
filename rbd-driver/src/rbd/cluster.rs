//! One long-lived cluster connection and a cache of one ioctx per pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

// librados comes through the `ceph` crate's bindings. Its `Rados` wrapper connects in one
// call and refuses options afterwards, and the long lane's connection needs options set
// between reading the conf file and connecting (the objecter's in-flight budget is fixed
// at connect), so the handles are owned here.
use ceph::rados as ffi;
use libc::c_char;

use super::{cstr, rbd_call};
use crate::error::{Error, Result};
use crate::types::ImageEntry;

/// A librados cluster handle; shut down when dropped.
struct RadosHandle(ffi::rados_t);
// SAFETY: librados documents `rados_t` as thread-safe.
unsafe impl Send for RadosHandle {}
// SAFETY: as above.
unsafe impl Sync for RadosHandle {}

impl Drop for RadosHandle {
    fn drop(&mut self) {
        // SAFETY: created by `rados_create`, shut down exactly once (connected or not).
        unsafe { ffi::rados_shutdown(self.0) }
    }
}

/// A librados ioctx; destroyed when dropped.
struct IoHandle(ffi::rados_ioctx_t);
// SAFETY: librados allows concurrent I/O on one ioctx; we never change its state
// (namespace, snapshot context) after creating it.
unsafe impl Send for IoHandle {}
// SAFETY: as above.
unsafe impl Sync for IoHandle {}

impl Drop for IoHandle {
    fn drop(&mut self) {
        // SAFETY: created by `rados_ioctx_create`, destroyed exactly once, before its
        // cluster handle (see `ClusterInner` and `PoolIo`).
        unsafe { ffi::rados_ioctx_destroy(self.0) }
    }
}

struct ClusterInner {
    // Declared before `rados`: fields drop in order, so every cached ioctx is destroyed
    // before the cluster handle shuts down.
    ioctxs: Mutex<HashMap<String, Arc<IoHandle>>>,
    rados: RadosHandle,
}

/// A connected cluster. Cheap to clone; the connection shuts down with the last clone.
#[derive(Clone)]
pub(crate) struct Cluster {
    inner: Arc<ClusterInner>,
}

/// An ioctx for one pool, keeping the cluster alive while it exists.
#[derive(Clone)]
pub(crate) struct PoolIo {
    // Declared before `_cluster` so it drops first.
    io: Arc<IoHandle>,
    name: String,
    _cluster: Arc<ClusterInner>,
}

fn os_error(r: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(r.abs())
}

/// Which daemon a command goes to.
#[derive(Clone, Copy)]
pub(crate) enum CommandTarget {
    Mon,
    Mgr,
}

impl Cluster {
    /// Connects as `client.<client_id>` with the conf file at `conf_path`, setting
    /// `options` between reading the file and connecting (they override it). Blocking:
    /// bounded by `client_mount_timeout` from the conf file.
    pub(crate) fn connect(
        client_id: &str,
        conf_path: &str,
        options: &[(&str, String)],
    ) -> Result<Cluster> {
        if !std::path::Path::new(conf_path).exists() {
            return Err(Error::Connect {
                message: format!("ceph.conf not found at {conf_path}"),
                errno: None,
            });
        }
        let failed = |what: String, r: i32| Error::Connect {
            message: format!(
                "client.{client_id} with {conf_path}: {what}: {}",
                os_error(r)
            ),
            errno: Some(r.abs()),
        };
        let id = cstr(client_id, "client id")?;
        let path = cstr(conf_path, "conf path")?;
        let mut raw: ffi::rados_t = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer; `id` outlives the call.
        let r = unsafe { ffi::rados_create(&mut raw, id.as_ptr()) };
        if r < 0 {
            return Err(failed("rados_create".into(), r));
        }
        // Owned from here: every early return shuts it down.
        let handle = RadosHandle(raw);
        // SAFETY: a created handle; `path` outlives the call.
        let r = unsafe { ffi::rados_conf_read_file(handle.0, path.as_ptr()) };
        if r < 0 {
            return Err(failed("reading the conf file".into(), r));
        }
        for (name, value) in options {
            let (n, v) = (cstr(name, "option name")?, cstr(value, "option value")?);
            // SAFETY: a created, unconnected handle; both strings outlive the call.
            let r = unsafe { ffi::rados_conf_set(handle.0, n.as_ptr(), v.as_ptr()) };
            if r < 0 {
                return Err(failed(format!("setting {name} = {value}"), r));
            }
        }
        // SAFETY: a configured handle, connected once.
        let r = unsafe { ffi::rados_connect(handle.0) };
        if r < 0 {
            return Err(failed("connecting".into(), r));
        }
        Ok(Cluster {
            inner: Arc::new(ClusterInner {
                ioctxs: Mutex::new(HashMap::new()),
                rados: handle,
            }),
        })
    }

    fn raw(&self) -> rbd_sys::rados_t {
        self.inner.rados.0 as rbd_sys::rados_t
    }

    /// The ioctx of `pool`, created on first use and cached.
    pub(crate) fn pool(&self, pool: &str) -> Result<PoolIo> {
        let mut cache = self
            .inner
            .ioctxs
            .lock()
            .map_err(|_| Error::Unexpected("ioctx cache poisoned".into()))?;
        let io = match cache.get(pool) {
            Some(io) => io.clone(),
            None => {
                let name = cstr(pool, "pool name")?;
                let mut raw: ffi::rados_ioctx_t = std::ptr::null_mut();
                // SAFETY: a connected handle, a valid out pointer, `name` outlives the call.
                rbd_call!("rados_ioctx_create", pool.to_string(), unsafe {
                    ffi::rados_ioctx_create(self.inner.rados.0, name.as_ptr(), &mut raw)
                })?;
                let io = Arc::new(IoHandle(raw));
                cache.insert(pool.to_string(), io.clone());
                io
            }
        };
        Ok(PoolIo {
            io,
            name: pool.to_string(),
            _cluster: self.inner.clone(),
        })
    }

    /// The cluster fsid. Wraps `rados_cluster_fsid`.
    pub(crate) fn fsid(&self) -> Result<String> {
        let mut buf = [0u8; 64];
        // SAFETY: a connected handle; librados writes at most `len` bytes into `buf`.
        let n = rbd_call!("rados_cluster_fsid", "cluster".to_string(), unsafe {
            ffi::rados_cluster_fsid(
                self.inner.rados.0,
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
            )
        })?;
        let n = (n as usize).min(buf.len());
        let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    /// The value of a client option as this connection has it. Wraps `rados_conf_get`.
    pub(crate) fn option(&self, name: &str) -> Result<String> {
        let n = cstr(name, "option name")?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: a live handle; librados writes a NUL-terminated value of at most
        // `len` bytes into `buf`.
        rbd_call!("rados_conf_get", name.to_string(), unsafe {
            ffi::rados_conf_get(
                self.inner.rados.0,
                n.as_ptr(),
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
            )
        })?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    /// Wraps `rados_get_instance_id`: our global client id, as watchers report it.
    pub(crate) fn instance_id(&self) -> u64 {
        // SAFETY: `raw()` is a connected cluster handle.
        unsafe { rbd_sys::rados_get_instance_id(self.raw()) }
    }

    /// Runs a JSON mon or mgr command; returns its output buffer. Wraps
    /// `rados_mon_command` / `rados_mgr_command`.
    pub(crate) fn command(
        &self,
        target: CommandTarget,
        cmd: &serde_json::Value,
    ) -> Result<Vec<u8>> {
        let prefix = cmd
            .get("prefix")
            .and_then(|p| p.as_str())
            .unwrap_or("?")
            .to_string();
        let text = cstr(&cmd.to_string(), "command")?;
        let mut cmds = [text.as_ptr()];
        let mut outbuf: *mut c_char = std::ptr::null_mut();
        let mut outbuf_len = 0usize;
        let mut outs: *mut c_char = std::ptr::null_mut();
        let mut outs_len = 0usize;
        // SAFETY: one valid command string; out pointers are valid; librados allocates the
        // output buffers, which we copy and free with rados_buffer_free below.
        let r = unsafe {
            let f = match target {
                CommandTarget::Mon => rbd_sys::rados_mon_command,
                CommandTarget::Mgr => rbd_sys::rados_mgr_command,
            };
            f(
                self.raw(),
                cmds.as_mut_ptr(),
                1,
                std::ptr::null(),
                0,
                &mut outbuf,
                &mut outbuf_len,
                &mut outs,
                &mut outs_len,
            )
        };
        // SAFETY: librados set (ptr, len) pairs or left them NULL/0.
        let (out, status) = unsafe {
            let take = |p: *mut c_char, n: usize| {
                if p.is_null() {
                    Vec::new()
                } else {
                    let v = std::slice::from_raw_parts(p as *const u8, n).to_vec();
                    rbd_sys::rados_buffer_free(p);
                    v
                }
            };
            (take(outbuf, outbuf_len), take(outs, outs_len))
        };
        if r < 0 {
            return Err(Error::Command {
                prefix,
                errno: -r,
                status: String::from_utf8_lossy(&status).into_owned(),
            });
        }
        Ok(out)
    }
}

impl PoolIo {
    pub(crate) fn raw(&self) -> rbd_sys::rados_ioctx_t {
        self.io.0 as rbd_sys::rados_ioctx_t
    }

    /// The pool's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn target(&self, image: &str) -> String {
        format!("{}/{}", self.name, image)
    }

    /// Wraps `rbd_list2`.
    pub(crate) fn list(&self) -> Result<Vec<ImageEntry>> {
        let mut max: usize = 64;
        loop {
            let mut specs = vec![
                rbd_sys::rbd_image_spec_t {
                    id: std::ptr::null_mut(),
                    name: std::ptr::null_mut()
                };
                max
            ];
            // SAFETY: `specs` has room for `max` entries; librbd writes at most that many.
            let r = unsafe { rbd_sys::rbd_list2(self.raw(), specs.as_mut_ptr(), &mut max) };
            if r == -libc::ERANGE {
                continue;
            }
            rbd_call!("rbd_list2", &self.name, r)?;
            let out = specs[..max]
                .iter()
                // SAFETY: the first `max` entries hold valid strings until cleanup.
                .map(|s| unsafe {
                    ImageEntry {
                        id: super::from_cstr(s.id),
                        name: super::from_cstr(s.name),
                    }
                })
                .collect();
            // SAFETY: frees what rbd_list2 allocated in the first `max` entries.
            unsafe { rbd_sys::rbd_image_spec_list_cleanup(specs.as_mut_ptr(), max) };
            return Ok(out);
        }
    }

    /// Wraps `rbd_rename`.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (cstr(from, "image name")?, cstr(to, "image name")?);
        // SAFETY: valid ioctx and C strings.
        rbd_call!("rbd_rename", self.target(from), unsafe {
            rbd_sys::rbd_rename(self.raw(), f.as_ptr(), t.as_ptr())
        })?;
        Ok(())
    }

    /// Wraps `rbd_remove_with_progress`: removes an image outright (for half-made images
    /// of our own; volumes go through the trash).
    pub(crate) fn remove(&self, name: &str, ctl: &crate::ctl::OpCtl) -> Result<()> {
        let n = cstr(name, "image name")?;
        let r = super::with_progress(ctl, |cb, arg| {
            // SAFETY: valid ioctx, C string, callback state that outlives the call.
            unsafe { rbd_sys::rbd_remove_with_progress(self.raw(), n.as_ptr(), cb, arg) }
        });
        rbd_call!("rbd_remove_with_progress", self.target(name), r)?;
        Ok(())
    }

    /// Reads up to `max` bytes of object `oid` (`rados_read`); `None` when it does not
    /// exist.
    pub(crate) fn read_object(&self, oid: &str, max: usize) -> Result<Option<Vec<u8>>> {
        let o = cstr(oid, "object name")?;
        let mut buf = vec![0u8; max];
        // SAFETY: valid ioctx and C string; `buf` has room for `max` bytes.
        let r = unsafe { ffi::rados_read(self.raw(), o.as_ptr(), buf.as_mut_ptr().cast(), max, 0) };
        match rbd_call!("rados_read", format!("{}/{oid}", self.name), r) {
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
            Ok(n) => {
                buf.truncate(n as usize);
                Ok(Some(buf))
            }
        }
    }

    /// Removes object `oid` (`rados_remove`); a missing object succeeds.
    pub(crate) fn remove_object(&self, oid: &str) -> Result<()> {
        let o = cstr(oid, "object name")?;
        // SAFETY: valid ioctx and C string.
        let r = unsafe { ffi::rados_remove(self.raw(), o.as_ptr()) };
        match rbd_call!("rados_remove", format!("{}/{oid}", self.name), r) {
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Calls method `method` of the `rbd` object class on object `oid` with `input`,
    /// the answer (if any) into `out`; returns librados's result.
    fn rbd_class(&self, oid: &str, method: &str, input: &[u8], out: &mut [u8]) -> Result<i32> {
        let (o, cls, m) = (
            cstr(oid, "object name")?,
            cstr("rbd", "class")?,
            cstr(method, "method")?,
        );
        // SAFETY: valid ioctx and C strings; `input` and `out` outlive the call and `out`
        // has room for `out.len()` bytes (a NULL pointer when empty).
        Ok(unsafe {
            rbd_sys::rados_exec(
                self.raw(),
                o.as_ptr(),
                cls.as_ptr(),
                m.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                if out.is_empty() {
                    std::ptr::null_mut()
                } else {
                    out.as_mut_ptr().cast()
                },
                out.len(),
            )
        })
    }

    /// Removes `name` → `id` from the pool's image directory (`rbd_directory`, through
    /// the `rbd` object class's `dir_remove_image`): the last step of a trash move, for
    /// a move cut short by a killed process, which leaves a name `rbd ls` lists but no
    /// image can be opened by. A missing entry succeeds.
    pub(crate) fn dir_remove(&self, name: &str, id: &str) -> Result<()> {
        let mut input = Vec::new();
        encode_str(&mut input, name);
        encode_str(&mut input, id);
        let r = self.rbd_class("rbd_directory", "dir_remove_image", &input, &mut [])?;
        match rbd_call!("dir_remove_image", self.target(name), r) {
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Sets trash entry `id` back to the normal state from `moving` (the `rbd` object
    /// class's `trash_state_set` on `rbd_trash`, conditional on the state being
    /// `moving`): a trash move cut short by a killed process leaves the entry `moving`,
    /// and librbd refuses to remove such an entry (`EUCLEAN`).
    pub(crate) fn trash_state_normal(&self, id: &str) -> Result<()> {
        // The id, then the new state and the expected one (a byte each: normal 0,
        // moving 1).
        let mut input = Vec::new();
        encode_str(&mut input, id);
        input.extend_from_slice(&[0, 1]);
        let r = self.rbd_class("rbd_trash", "trash_state_set", &input, &mut [])?;
        rbd_call!("trash_state_set", self.target(id), r).map(|_| ())
    }

    /// Whether trash entry `id` exists, whatever its source (the `rbd` object class's
    /// `trash_get` on `rbd_trash`; `rbd_trash_list` leaves out images librbd's own remove
    /// parked there).
    pub(crate) fn trash_contains(&self, id: &str) -> Result<bool> {
        let mut input = Vec::new();
        encode_str(&mut input, id);
        let mut out = vec![0u8; 64 * 1024];
        let r = self.rbd_class("rbd_trash", "trash_get", &input, &mut out)?;
        match rbd_call!("trash_get", self.target(id), r) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Wraps `rbd_trash_move` (delay 0).
    pub(crate) fn trash_move(&self, name: &str) -> Result<()> {
        let n = cstr(name, "image name")?;
        // SAFETY: valid ioctx and C string.
        rbd_call!("rbd_trash_move", self.target(name), unsafe {
            rbd_sys::rbd_trash_move(self.raw(), n.as_ptr(), 0)
        })?;
        Ok(())
    }

    /// Wraps `rbd_trash_list`.
    pub(crate) fn trash_list(&self) -> Result<Vec<crate::types::TrashEntry>> {
        let mut max: usize = 32;
        loop {
            let mut entries = vec![
                rbd_sys::rbd_trash_image_info_t {
                    id: std::ptr::null_mut(),
                    name: std::ptr::null_mut(),
                    source: 0,
                    deletion_time: 0,
                    deferment_end_time: 0,
                };
                max
            ];
            // SAFETY: `entries` has room for `max` entries.
            let r = unsafe { rbd_sys::rbd_trash_list(self.raw(), entries.as_mut_ptr(), &mut max) };
            if r == -libc::ERANGE {
                continue;
            }
            rbd_call!("rbd_trash_list", &self.name, r)?;
            let n = max;
            let out = entries[..n]
                .iter()
                // SAFETY: the first `n` entries are valid until cleanup.
                .map(|e| unsafe {
                    crate::types::TrashEntry {
                        id: super::from_cstr(e.id),
                        name: super::from_cstr(e.name),
                        deletion_time: e.deletion_time,
                        deferment_end_time: e.deferment_end_time,
                    }
                })
                .collect();
            // SAFETY: frees what rbd_trash_list allocated.
            unsafe { rbd_sys::rbd_trash_list_cleanup(entries.as_mut_ptr(), n) };
            return Ok(out);
        }
    }

    /// Wraps `rbd_trash_remove_with_progress` (force = false).
    pub(crate) fn trash_remove(&self, id: &str, ctl: &crate::ctl::OpCtl) -> Result<()> {
        let c = cstr(id, "image id")?;
        let r = super::with_progress(ctl, |cb, arg| {
            // SAFETY: valid ioctx, C string, and callback state that outlives the call.
            unsafe {
                rbd_sys::rbd_trash_remove_with_progress(self.raw(), c.as_ptr(), false, cb, arg)
            }
        });
        rbd_call!(
            "rbd_trash_remove_with_progress",
            format!("{}/trash/{}", self.name, id),
            r
        )?;
        Ok(())
    }
}

/// Appends `s` as Ceph encodes a string: a little-endian u32 length, then its bytes.
fn encode_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}
