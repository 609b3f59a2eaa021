//! Raw declarations for the part of librbd (Ceph Pacific 16.2, LIBRBD 1.16) that this
//! project calls, plus `rados_mgr_command`, which the `ceph` crate does not bind.
//!
//! Hand-written rather than generated: no libclang in CI, a small reviewed surface. Every
//! function carries its C prototype; every `repr(C)` struct is checked against the C
//! compiler's view of `librbd.h` by `tests/layout.rs`. No logic lives here: the safe
//! wrapper is `cinder-rbd-driver`'s `rbd` module.
#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_void, size_t, ssize_t, time_t};

/// `typedef void *rados_t;`
pub type rados_t = *mut c_void;
/// `typedef void *rados_ioctx_t;`
pub type rados_ioctx_t = *mut c_void;
/// `typedef void *rbd_image_t;`
pub type rbd_image_t = *mut c_void;
/// `typedef void *rbd_image_options_t;`
pub type rbd_image_options_t = *mut c_void;
/// `typedef void *rbd_completion_t;`
pub type rbd_completion_t = *mut c_void;
/// `typedef void (*rbd_callback_t)(rbd_completion_t cb, void *arg);`
pub type rbd_callback_t = Option<unsafe extern "C" fn(cb: rbd_completion_t, arg: *mut c_void)>;
/// `typedef int (*librbd_progress_fn_t)(uint64_t offset, uint64_t total, void *ptr);`
pub type librbd_progress_fn_t =
    Option<unsafe extern "C" fn(offset: u64, total: u64, ptr: *mut c_void) -> c_int>;
/// Callback of `rbd_diff_iterate2`: `int (*cb)(uint64_t, size_t, int, void *)`.
pub type rbd_diff_cb_t = Option<
    unsafe extern "C" fn(offset: u64, len: size_t, exists: c_int, arg: *mut c_void) -> c_int,
>;

/// `rbd_snap_namespace_type_t` (a C enum, int-sized).
pub type rbd_snap_namespace_type_t = c_int;
pub const RBD_SNAP_NAMESPACE_TYPE_USER: rbd_snap_namespace_type_t = 0;
pub const RBD_SNAP_NAMESPACE_TYPE_GROUP: rbd_snap_namespace_type_t = 1;
pub const RBD_SNAP_NAMESPACE_TYPE_TRASH: rbd_snap_namespace_type_t = 2;
pub const RBD_SNAP_NAMESPACE_TYPE_MIRROR: rbd_snap_namespace_type_t = 3;

/// `rbd_trash_image_source_t` (a C enum, int-sized).
pub type rbd_trash_image_source_t = c_int;

pub const RBD_MAX_IMAGE_NAME_SIZE: usize = 96;
pub const RBD_MAX_BLOCK_NAME_SIZE: usize = 24;

pub const RBD_SNAP_REMOVE_UNPROTECT: u32 = 1 << 0;
pub const RBD_SNAP_REMOVE_FLATTEN: u32 = 1 << 1;
pub const RBD_SNAP_CREATE_SKIP_QUIESCE: u32 = 1 << 0;

pub const RBD_IMAGE_OPTION_FORMAT: c_int = 0;
pub const RBD_IMAGE_OPTION_FEATURES: c_int = 1;
pub const RBD_IMAGE_OPTION_ORDER: c_int = 2;
pub const RBD_IMAGE_OPTION_STRIPE_UNIT: c_int = 3;
pub const RBD_IMAGE_OPTION_STRIPE_COUNT: c_int = 4;
pub const RBD_IMAGE_OPTION_DATA_POOL: c_int = 10;
pub const RBD_IMAGE_OPTION_FLATTEN: c_int = 11;
pub const RBD_IMAGE_OPTION_CLONE_FORMAT: c_int = 12;

/// `RBD_FEATURE_*` bits from `rbd/features.h`.
pub const RBD_FEATURE_LAYERING: u64 = 1 << 0;
pub const RBD_FEATURE_STRIPINGV2: u64 = 1 << 1;
pub const RBD_FEATURE_EXCLUSIVE_LOCK: u64 = 1 << 2;
pub const RBD_FEATURE_OBJECT_MAP: u64 = 1 << 3;
pub const RBD_FEATURE_FAST_DIFF: u64 = 1 << 4;
pub const RBD_FEATURE_DEEP_FLATTEN: u64 = 1 << 5;
pub const RBD_FEATURE_JOURNALING: u64 = 1 << 6;
pub const RBD_FEATURE_DATA_POOL: u64 = 1 << 7;
/// `RBD_OPERATION_FEATURE_CLONE_PARENT`: the image is a parent of clone-v2 children.
pub const RBD_OPERATION_FEATURE_CLONE_PARENT: u64 = 1 << 0;
/// `RBD_OPERATION_FEATURE_CLONE_CHILD`: the image is a clone-v2 child.
pub const RBD_OPERATION_FEATURE_CLONE_CHILD: u64 = 1 << 1;

/// `LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL`
pub const LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL: c_int = 0x8;
/// `LIBRADOS_OP_FLAG_FADVISE_NOCACHE`
pub const LIBRADOS_OP_FLAG_FADVISE_NOCACHE: c_int = 0x40;

/// ```c
/// typedef struct {
///   uint64_t size; uint64_t obj_size; uint64_t num_objs; int order;
///   char block_name_prefix[RBD_MAX_BLOCK_NAME_SIZE]; int64_t parent_pool;
///   char parent_name[RBD_MAX_IMAGE_NAME_SIZE];
/// } rbd_image_info_t;
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_image_info_t {
    pub size: u64,
    pub obj_size: u64,
    pub num_objs: u64,
    pub order: c_int,
    pub block_name_prefix: [c_char; RBD_MAX_BLOCK_NAME_SIZE],
    pub parent_pool: i64,
    pub parent_name: [c_char; RBD_MAX_IMAGE_NAME_SIZE],
}

/// `typedef struct { char *id; char *name; } rbd_image_spec_t;`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_image_spec_t {
    pub id: *mut c_char,
    pub name: *mut c_char,
}

/// ```c
/// typedef struct {
///   int64_t pool_id; char *pool_name; char *pool_namespace; char *image_id;
///   char *image_name; bool trash;
/// } rbd_linked_image_spec_t;
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_linked_image_spec_t {
    pub pool_id: i64,
    pub pool_name: *mut c_char,
    pub pool_namespace: *mut c_char,
    pub image_id: *mut c_char,
    pub image_name: *mut c_char,
    pub trash: bool,
}

/// `typedef struct { uint64_t id; rbd_snap_namespace_type_t namespace_type; char *name; } rbd_snap_spec_t;`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_snap_spec_t {
    pub id: u64,
    pub namespace_type: rbd_snap_namespace_type_t,
    pub name: *mut c_char,
}

/// `typedef struct { uint64_t id; uint64_t size; const char *name; } rbd_snap_info_t;`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_snap_info_t {
    pub id: u64,
    pub size: u64,
    pub name: *const c_char,
}

/// ```c
/// typedef struct {
///   char *id; char *name; rbd_trash_image_source_t source;
///   time_t deletion_time; time_t deferment_end_time;
/// } rbd_trash_image_info_t;
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_trash_image_info_t {
    pub id: *mut c_char,
    pub name: *mut c_char,
    pub source: rbd_trash_image_source_t,
    pub deletion_time: time_t,
    pub deferment_end_time: time_t,
}

/// `typedef struct { char *addr; int64_t id; uint64_t cookie; } rbd_image_watcher_t;`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rbd_image_watcher_t {
    pub addr: *mut c_char,
    pub id: i64,
    pub cookie: u64,
}

extern "C" {
    /// `void rbd_version(int *major, int *minor, int *extra);`
    pub fn rbd_version(major: *mut c_int, minor: *mut c_int, extra: *mut c_int);

    // ---- image options ----
    /// `void rbd_image_options_create(rbd_image_options_t* opts);`
    pub fn rbd_image_options_create(opts: *mut rbd_image_options_t);
    /// `void rbd_image_options_destroy(rbd_image_options_t opts);`
    pub fn rbd_image_options_destroy(opts: rbd_image_options_t);
    /// `int rbd_image_options_set_string(rbd_image_options_t opts, int optname, const char* optval);`
    pub fn rbd_image_options_set_string(
        opts: rbd_image_options_t,
        optname: c_int,
        optval: *const c_char,
    ) -> c_int;
    /// `int rbd_image_options_set_uint64(rbd_image_options_t opts, int optname, uint64_t optval);`
    pub fn rbd_image_options_set_uint64(
        opts: rbd_image_options_t,
        optname: c_int,
        optval: u64,
    ) -> c_int;

    // ---- pool-level image management ----
    /// `int rbd_list2(rados_ioctx_t io, rbd_image_spec_t* images, size_t *max_images);`
    pub fn rbd_list2(
        io: rados_ioctx_t,
        images: *mut rbd_image_spec_t,
        max_images: *mut size_t,
    ) -> c_int;
    /// `void rbd_image_spec_list_cleanup(rbd_image_spec_t *images, size_t num_images);`
    pub fn rbd_image_spec_list_cleanup(images: *mut rbd_image_spec_t, num_images: size_t);
    /// `int rbd_create4(rados_ioctx_t io, const char *name, uint64_t size, rbd_image_options_t opts);`
    pub fn rbd_create4(
        io: rados_ioctx_t,
        name: *const c_char,
        size: u64,
        opts: rbd_image_options_t,
    ) -> c_int;
    /// `int rbd_clone3(rados_ioctx_t p_ioctx, const char *p_name, const char *p_snapname,
    ///                 rados_ioctx_t c_ioctx, const char *c_name, rbd_image_options_t c_opts);`
    pub fn rbd_clone3(
        p_ioctx: rados_ioctx_t,
        p_name: *const c_char,
        p_snapname: *const c_char,
        c_ioctx: rados_ioctx_t,
        c_name: *const c_char,
        c_opts: rbd_image_options_t,
    ) -> c_int;
    /// `int rbd_remove_with_progress(rados_ioctx_t io, const char *name, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_remove_with_progress(
        io: rados_ioctx_t,
        name: *const c_char,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_rename(rados_ioctx_t src_io_ctx, const char *srcname, const char *destname);`
    pub fn rbd_rename(io: rados_ioctx_t, srcname: *const c_char, destname: *const c_char) -> c_int;

    // ---- trash ----
    /// `int rbd_trash_move(rados_ioctx_t io, const char *name, uint64_t delay);`
    pub fn rbd_trash_move(io: rados_ioctx_t, name: *const c_char, delay: u64) -> c_int;
    /// `int rbd_trash_get(rados_ioctx_t io, const char *id, rbd_trash_image_info_t *info);`
    pub fn rbd_trash_get(
        io: rados_ioctx_t,
        id: *const c_char,
        info: *mut rbd_trash_image_info_t,
    ) -> c_int;
    /// `void rbd_trash_get_cleanup(rbd_trash_image_info_t *info);`
    pub fn rbd_trash_get_cleanup(info: *mut rbd_trash_image_info_t);
    /// `int rbd_trash_list(rados_ioctx_t io, rbd_trash_image_info_t *trash_entries, size_t *num_entries);`
    pub fn rbd_trash_list(
        io: rados_ioctx_t,
        trash_entries: *mut rbd_trash_image_info_t,
        num_entries: *mut size_t,
    ) -> c_int;
    /// `void rbd_trash_list_cleanup(rbd_trash_image_info_t *trash_entries, size_t num_entries);`
    pub fn rbd_trash_list_cleanup(trash_entries: *mut rbd_trash_image_info_t, num_entries: size_t);
    /// `int rbd_trash_remove_with_progress(rados_ioctx_t io, const char *id, bool force,
    ///                                     librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_trash_remove_with_progress(
        io: rados_ioctx_t,
        id: *const c_char,
        force: bool,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;

    // ---- open / close / stat ----
    /// `int rbd_open(rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name);`
    pub fn rbd_open(
        io: rados_ioctx_t,
        name: *const c_char,
        image: *mut rbd_image_t,
        snap_name: *const c_char,
    ) -> c_int;
    /// `int rbd_open_by_id(rados_ioctx_t io, const char *id, rbd_image_t *image, const char *snap_name);`
    pub fn rbd_open_by_id(
        io: rados_ioctx_t,
        id: *const c_char,
        image: *mut rbd_image_t,
        snap_name: *const c_char,
    ) -> c_int;
    /// `int rbd_open_read_only(rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name);`
    pub fn rbd_open_read_only(
        io: rados_ioctx_t,
        name: *const c_char,
        image: *mut rbd_image_t,
        snap_name: *const c_char,
    ) -> c_int;
    /// `int rbd_open_by_id_read_only(rados_ioctx_t io, const char *id, rbd_image_t *image, const char *snap_name);`
    pub fn rbd_open_by_id_read_only(
        io: rados_ioctx_t,
        id: *const c_char,
        image: *mut rbd_image_t,
        snap_name: *const c_char,
    ) -> c_int;
    /// `int rbd_close(rbd_image_t image);`
    pub fn rbd_close(image: rbd_image_t) -> c_int;
    /// `int rbd_resize2(rbd_image_t image, uint64_t size, bool allow_shrink, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_resize2(
        image: rbd_image_t,
        size: u64,
        allow_shrink: bool,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_stat(rbd_image_t image, rbd_image_info_t *info, size_t infosize);`
    pub fn rbd_stat(image: rbd_image_t, info: *mut rbd_image_info_t, infosize: size_t) -> c_int;
    /// `int rbd_get_features(rbd_image_t image, uint64_t *features);`
    pub fn rbd_get_features(image: rbd_image_t, features: *mut u64) -> c_int;
    /// `int rbd_get_op_features(rbd_image_t image, uint64_t *op_features);`
    pub fn rbd_get_op_features(image: rbd_image_t, op_features: *mut u64) -> c_int;
    /// `int rbd_get_id(rbd_image_t image, char *id, size_t id_len);`
    pub fn rbd_get_id(image: rbd_image_t, id: *mut c_char, id_len: size_t) -> c_int;
    /// `int64_t rbd_get_data_pool_id(rbd_image_t image);`
    pub fn rbd_get_data_pool_id(image: rbd_image_t) -> i64;
    /// `int rbd_get_parent(rbd_image_t image, rbd_linked_image_spec_t *parent_image, rbd_snap_spec_t *parent_snap);`
    pub fn rbd_get_parent(
        image: rbd_image_t,
        parent_image: *mut rbd_linked_image_spec_t,
        parent_snap: *mut rbd_snap_spec_t,
    ) -> c_int;
    /// `void rbd_linked_image_spec_cleanup(rbd_linked_image_spec_t *image);`
    pub fn rbd_linked_image_spec_cleanup(image: *mut rbd_linked_image_spec_t);
    /// `void rbd_linked_image_spec_list_cleanup(rbd_linked_image_spec_t *images, size_t num_images);`
    pub fn rbd_linked_image_spec_list_cleanup(
        images: *mut rbd_linked_image_spec_t,
        num_images: size_t,
    );
    /// `void rbd_snap_spec_cleanup(rbd_snap_spec_t *snap);`
    pub fn rbd_snap_spec_cleanup(snap: *mut rbd_snap_spec_t);
    /// `int rbd_watchers_list(rbd_image_t image, rbd_image_watcher_t *watchers, size_t *max_watchers);`
    pub fn rbd_watchers_list(
        image: rbd_image_t,
        watchers: *mut rbd_image_watcher_t,
        max_watchers: *mut size_t,
    ) -> c_int;
    /// `void rbd_watchers_list_cleanup(rbd_image_watcher_t *watchers, size_t num_watchers);`
    pub fn rbd_watchers_list_cleanup(watchers: *mut rbd_image_watcher_t, num_watchers: size_t);

    // ---- snapshots ----
    /// `int rbd_snap_list(rbd_image_t image, rbd_snap_info_t *snaps, int *max_snaps);`
    pub fn rbd_snap_list(
        image: rbd_image_t,
        snaps: *mut rbd_snap_info_t,
        max_snaps: *mut c_int,
    ) -> c_int;
    /// `void rbd_snap_list_end(rbd_snap_info_t *snaps);`
    pub fn rbd_snap_list_end(snaps: *mut rbd_snap_info_t);
    /// `int rbd_snap_exists(rbd_image_t image, const char *snapname, bool *exists);`
    pub fn rbd_snap_exists(image: rbd_image_t, snapname: *const c_char, exists: *mut bool)
        -> c_int;
    /// `int rbd_snap_create2(rbd_image_t image, const char *snap_name, uint32_t flags, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_snap_create2(
        image: rbd_image_t,
        snap_name: *const c_char,
        flags: u32,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_snap_remove2(rbd_image_t image, const char *snap_name, uint32_t flags, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_snap_remove2(
        image: rbd_image_t,
        snap_name: *const c_char,
        flags: u32,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_snap_remove_by_id(rbd_image_t image, uint64_t snap_id);`
    pub fn rbd_snap_remove_by_id(image: rbd_image_t, snap_id: u64) -> c_int;
    /// `int rbd_snap_rollback_with_progress(rbd_image_t image, const char *snapname, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_snap_rollback_with_progress(
        image: rbd_image_t,
        snapname: *const c_char,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_snap_protect(rbd_image_t image, const char *snap_name);`
    pub fn rbd_snap_protect(image: rbd_image_t, snap_name: *const c_char) -> c_int;
    /// `int rbd_snap_unprotect(rbd_image_t image, const char *snap_name);`
    pub fn rbd_snap_unprotect(image: rbd_image_t, snap_name: *const c_char) -> c_int;
    /// `int rbd_snap_is_protected(rbd_image_t image, const char *snap_name, int *is_protected);`
    pub fn rbd_snap_is_protected(
        image: rbd_image_t,
        snap_name: *const c_char,
        is_protected: *mut c_int,
    ) -> c_int;
    /// `int rbd_snap_set(rbd_image_t image, const char *snapname);`
    pub fn rbd_snap_set(image: rbd_image_t, snapname: *const c_char) -> c_int;
    /// `int rbd_snap_get_namespace_type(rbd_image_t image, uint64_t snap_id, rbd_snap_namespace_type_t *namespace_type);`
    pub fn rbd_snap_get_namespace_type(
        image: rbd_image_t,
        snap_id: u64,
        namespace_type: *mut rbd_snap_namespace_type_t,
    ) -> c_int;
    /// `int rbd_snap_get_trash_namespace(rbd_image_t image, uint64_t snap_id, char* original_name, size_t max_length);`
    pub fn rbd_snap_get_trash_namespace(
        image: rbd_image_t,
        snap_id: u64,
        original_name: *mut c_char,
        max_length: size_t,
    ) -> c_int;

    // ---- clone / flatten ----
    /// `int rbd_flatten_with_progress(rbd_image_t image, librbd_progress_fn_t cb, void *cbdata);`
    pub fn rbd_flatten_with_progress(
        image: rbd_image_t,
        cb: librbd_progress_fn_t,
        cbdata: *mut c_void,
    ) -> c_int;
    /// `int rbd_list_children3(rbd_image_t image, rbd_linked_image_spec_t *images, size_t *max_images);`
    /// (children of the snapshot the image is opened at)
    pub fn rbd_list_children3(
        image: rbd_image_t,
        images: *mut rbd_linked_image_spec_t,
        max_images: *mut size_t,
    ) -> c_int;

    // ---- I/O and diff ----
    /// `ssize_t rbd_read2(rbd_image_t image, uint64_t ofs, size_t len, char *buf, int op_flags);`
    pub fn rbd_read2(
        image: rbd_image_t,
        ofs: u64,
        len: size_t,
        buf: *mut c_char,
        op_flags: c_int,
    ) -> ssize_t;
    /// `ssize_t rbd_write2(rbd_image_t image, uint64_t ofs, size_t len, const char *buf, int op_flags);`
    pub fn rbd_write2(
        image: rbd_image_t,
        ofs: u64,
        len: size_t,
        buf: *const c_char,
        op_flags: c_int,
    ) -> ssize_t;
    /// `int rbd_discard(rbd_image_t image, uint64_t ofs, uint64_t len);` (returns the
    /// length discarded as an int: callers keep `len` under 2 GiB)
    pub fn rbd_discard(image: rbd_image_t, ofs: u64, len: u64) -> c_int;
    /// `int rbd_flush(rbd_image_t image);`
    pub fn rbd_flush(image: rbd_image_t) -> c_int;
    /// `int rbd_diff_iterate2(rbd_image_t image, const char *fromsnapname, uint64_t ofs, uint64_t len,
    ///                        uint8_t include_parent, uint8_t whole_object,
    ///                        int (*cb)(uint64_t, size_t, int, void *), void *arg);`
    pub fn rbd_diff_iterate2(
        image: rbd_image_t,
        fromsnapname: *const c_char,
        ofs: u64,
        len: u64,
        include_parent: u8,
        whole_object: u8,
        cb: rbd_diff_cb_t,
        arg: *mut c_void,
    ) -> c_int;
    /// `int rbd_aio_read2(rbd_image_t image, uint64_t off, size_t len, char *buf, rbd_completion_t c, int op_flags);`
    pub fn rbd_aio_read2(
        image: rbd_image_t,
        off: u64,
        len: size_t,
        buf: *mut c_char,
        c: rbd_completion_t,
        op_flags: c_int,
    ) -> c_int;
    /// `int rbd_aio_write2(rbd_image_t image, uint64_t off, size_t len, const char *buf, rbd_completion_t c, int op_flags);`
    pub fn rbd_aio_write2(
        image: rbd_image_t,
        off: u64,
        len: size_t,
        buf: *const c_char,
        c: rbd_completion_t,
        op_flags: c_int,
    ) -> c_int;
    /// `int rbd_aio_write_zeroes(rbd_image_t image, uint64_t off, size_t len, rbd_completion_t c, int zero_flags, int op_flags);`
    pub fn rbd_aio_write_zeroes(
        image: rbd_image_t,
        off: u64,
        len: size_t,
        c: rbd_completion_t,
        zero_flags: c_int,
        op_flags: c_int,
    ) -> c_int;
    /// `int rbd_aio_create_completion(void *cb_arg, rbd_callback_t complete_cb, rbd_completion_t *c);`
    pub fn rbd_aio_create_completion(
        cb_arg: *mut c_void,
        complete_cb: rbd_callback_t,
        c: *mut rbd_completion_t,
    ) -> c_int;
    /// `int rbd_aio_wait_for_complete(rbd_completion_t c);`
    pub fn rbd_aio_wait_for_complete(c: rbd_completion_t) -> c_int;
    /// `int rbd_aio_is_complete(rbd_completion_t c);`
    pub fn rbd_aio_is_complete(c: rbd_completion_t) -> c_int;
    /// `ssize_t rbd_aio_get_return_value(rbd_completion_t c);`
    pub fn rbd_aio_get_return_value(c: rbd_completion_t) -> ssize_t;
    /// `void rbd_aio_release(rbd_completion_t c);`
    pub fn rbd_aio_release(c: rbd_completion_t);

    // ---- librados, not bound by the `ceph` crate ----
    /// `int rados_mgr_command(rados_t cluster, const char **cmd, size_t cmdlen, const char *inbuf,
    ///                        size_t inbuflen, char **outbuf, size_t *outbuflen, char **outs, size_t *outslen);`
    pub fn rados_mgr_command(
        cluster: rados_t,
        cmd: *mut *const c_char,
        cmdlen: size_t,
        inbuf: *const c_char,
        inbuflen: size_t,
        outbuf: *mut *mut c_char,
        outbuflen: *mut size_t,
        outs: *mut *mut c_char,
        outslen: *mut size_t,
    ) -> c_int;
    /// `int rados_mon_command(rados_t cluster, const char **cmd, size_t cmdlen, const char *inbuf,
    ///                        size_t inbuflen, char **outbuf, size_t *outbuflen, char **outs, size_t *outslen);`
    pub fn rados_mon_command(
        cluster: rados_t,
        cmd: *mut *const c_char,
        cmdlen: size_t,
        inbuf: *const c_char,
        inbuflen: size_t,
        outbuf: *mut *mut c_char,
        outbuflen: *mut size_t,
        outs: *mut *mut c_char,
        outslen: *mut size_t,
    ) -> c_int;
    /// `uint64_t rados_get_instance_id(rados_t cluster);`
    pub fn rados_get_instance_id(cluster: rados_t) -> u64;
    /// `void rados_buffer_free(char *buf);`
    pub fn rados_buffer_free(buf: *mut c_char);
    /// `int rados_exec(rados_ioctx_t io, const char *oid, const char *cls,
    ///                 const char *method, const char *in_buf, size_t in_len,
    ///                 char *buf, size_t out_len);`
    pub fn rados_exec(
        io: rados_ioctx_t,
        oid: *const c_char,
        cls: *const c_char,
        method: *const c_char,
        in_buf: *const c_char,
        in_len: size_t,
        buf: *mut c_char,
        out_len: size_t,
    ) -> c_int;
}
