//! Image lifecycle: create, stat, resize, rename, list, watchers, remove through the
//! trash, and plain reads and writes.

use tracing::instrument;

use super::RbdDriver;
use crate::ctl::OpCtl;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::Lane;
use crate::rbd::{Image, ImageOptions, Open, PoolIo};
use crate::types::{
    CreateOptions, ImageEntry, ImageInfo, ImageSpec, ImageUse, RemoveMode, RemoveOutcome,
    TrashEntry, Watcher,
};

pub(crate) fn info_of(img: &Image<'_>) -> Result<ImageInfo> {
    let st = img.stat()?;
    Ok(ImageInfo {
        id: img.id()?,
        size: st.size,
        object_size: st.obj_size,
        order: st.order as u8,
        features: img.features()?,
        op_features: img.op_features()?,
        parent: img.parent()?,
        snapshot_count: img.snapshots()?.len(),
    })
}

/// Watchers other than this client (our own open handle registers one too).
pub(crate) fn foreign_watchers(img: &Image<'_>, own_ids: &[u64]) -> Result<Vec<Watcher>> {
    Ok(img
        .watchers()?
        .into_iter()
        .filter(|w| !own_ids.contains(&(w.id as u64)))
        .collect())
}

impl RbdDriver {
    /// Creates an image. Creating an image that exists with the same size succeeds (a
    /// redelivered request); with another size it is `AlreadyExists`.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, size = opts.size))]
    pub async fn create_image(&self, spec: &ImageSpec, opts: &CreateOptions) -> Result<()> {
        let (spec, opts) = (spec.clone(), opts.clone());
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let o = ImageOptions::for_new_image(
                Some(opts.order.unwrap_or(inner.config.order())),
                opts.features,
                opts.data_pool.as_deref(),
            )?;
            match io.create(&spec.name, opts.size, &o) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let size = Image::open(&io, Open::NameReadOnly(&spec.name, None))?
                        .stat()?
                        .size;
                    if size == opts.size {
                        Ok(())
                    } else {
                        Err(Error::AlreadyExists {
                            target: spec.to_string(),
                            detail: format!("size {size}, asked {}", opts.size),
                        })
                    }
                }
                r => r,
            }
        })
        .await
    }

    /// Opens the image and reports what it is.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn image_info(&self, spec: &ImageSpec) -> Result<ImageInfo> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, None))?;
            info_of(&img)
        })
        .await
    }

    /// The image's size and how many other clients have it open, in one open.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn image_use(&self, spec: &ImageSpec) -> Result<ImageUse> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, None))?;
            Ok(ImageUse {
                size: img.stat()?.size,
                watchers: foreign_watchers(&img, &inner.own_ids())?.len(),
            })
        })
        .await
    }

    /// Whether the image exists.
    pub async fn exists(&self, spec: &ImageSpec) -> Result<bool> {
        match self.image_info(spec).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Resizes. Growing only writes the header and runs on the short lane; shrinking
    /// discards objects and runs on the long lane. Resizing to the current size does
    /// nothing.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, size))]
    pub async fn resize(
        &self,
        spec: &ImageSpec,
        size: u64,
        allow_shrink: bool,
        ctl: &OpCtl,
    ) -> Result<()> {
        let lane = if size >= self.image_info(spec).await?.size {
            Lane::Short
        } else {
            Lane::Long
        };
        let spec = spec.clone();
        self.run(lane, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            if img.stat()?.size == size {
                return Ok(());
            }
            img.resize(size, allow_shrink, ctl)
        })
        .await
    }

    /// Renames within the pool. A retry after success (source gone, target present) succeeds.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, to = new_name))]
    pub async fn rename_image(&self, spec: &ImageSpec, new_name: &str) -> Result<()> {
        let (spec, to) = (spec.clone(), new_name.to_string());
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            match io.rename(&spec.name, &to) {
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        && Image::open(&io, Open::NameReadOnly(&to, None)).is_ok() =>
                {
                    Ok(())
                }
                r => r,
            }
        })
        .await
    }

    /// Lists the images of a pool (names and ids; no per-image opens).
    #[instrument(skip_all, fields(pool))]
    pub async fn list_images(&self, pool: &str) -> Result<Vec<ImageEntry>> {
        let pool = pool.to_string();
        self.short(move |inner| inner.io(&pool)?.list()).await
    }

    /// Clients that have the image open, other than this driver.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn watchers(&self, spec: &ImageSpec) -> Result<Vec<Watcher>> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, None))?;
            foreign_watchers(&img, &inner.own_ids())
        })
        .await
    }

    /// Removes an image through the trash. Refuses (`Busy`) while other clients have it
    /// open and (`HasDependents`) while it has user snapshots; both leave it untouched.
    /// Clones of its snapshots do not block: the image waits in the trash until they go.
    /// A missing image succeeds; a retry finds the trash entry of the same name and
    /// carries on.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, ?mode))]
    pub async fn remove_image(
        &self,
        spec: &ImageSpec,
        mode: RemoveMode,
        ctl: &OpCtl,
    ) -> Result<RemoveOutcome> {
        let spec = spec.clone();
        let trash_id = self
            .short({
                let spec = spec.clone();
                move |inner| {
                    let io = inner.io(&spec.pool)?;
                    let img = match Image::open(&io, Open::NameReadOnly(&spec.name, None)) {
                        Ok(img) => img,
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            let trashed = io
                                .trash_list()?
                                .into_iter()
                                .find(|t| t.name == spec.name)
                                .map(|t| t.id);
                            repair_dangling_name(&io, &spec.name, trashed.as_deref())?;
                            remove_orphan_id_object(&io, &spec.name, trashed.as_deref())?;
                            return Ok(trashed);
                        }
                        Err(e) => return Err(e),
                    };
                    let watchers = foreign_watchers(&img, &inner.own_ids())?;
                    if !watchers.is_empty() {
                        return Err(Error::Watched {
                            target: spec.to_string(),
                            watchers: watchers.into_iter().map(|w| w.addr).collect(),
                        });
                    }
                    let user_snaps: Vec<String> = img
                        .snapshots()?
                        .into_iter()
                        .filter(|s| s.namespace == crate::types::SnapNamespace::User)
                        .map(|s| s.name)
                        .collect();
                    if !user_snaps.is_empty() {
                        return Err(Error::HasDependents {
                            target: spec.to_string(),
                            what: format!("snapshots {user_snaps:?}"),
                        });
                    }
                    let id = img.id()?;
                    drop(img);
                    // librbd resumes a move a killed process cut short; once more if the
                    // first try fails.
                    match io.trash_move(&spec.name).or_else(|_| io.trash_move(&spec.name)) {
                        Ok(()) => Ok(Some(id)),
                        Err(e) => {
                            // A trash move cut after it added the trash entry leaves the
                            // id object and the name; if librbd cannot finish it, the
                            // entry is there and only the name is left to remove. Never
                            // for an image another client holds.
                            if e.kind() != ErrorKind::Busy
                                && io.trash_list()?.iter().any(|t| t.id == id)
                            {
                                tracing::warn!(pool = %io.name(), image = %spec.name, id = %id, error = %e, "finishing a trash move a killed process cut short");
                                io.remove_object(&format!("rbd_id.{}", spec.name))?;
                                io.dir_remove(&spec.name, &id)?;
                                Ok(Some(id))
                            } else {
                                Err(e)
                            }
                        }
                    }
                }
            })
            .await?;
        let Some(trash_id) = trash_id else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        match mode {
            RemoveMode::TrashOnly => Ok(RemoveOutcome::Trashed { trash_id }),
            RemoveMode::QueuePurge => {
                let task_id = self.queue_trash_purge(&spec.pool, &trash_id).await?;
                Ok(RemoveOutcome::PurgeQueued { trash_id, task_id })
            }
            RemoveMode::PurgeNow => match self.purge_trash(&spec.pool, &trash_id, ctl).await {
                Ok(()) => Ok(RemoveOutcome::Purged),
                Err(e) if matches!(e.kind(), ErrorKind::HasDependents | ErrorKind::Busy) => {
                    Ok(RemoveOutcome::Trashed { trash_id })
                }
                Err(e) => Err(e),
            },
        }
    }

    /// The pool's trash.
    #[instrument(skip_all, fields(pool))]
    pub async fn trash_list(&self, pool: &str) -> Result<Vec<TrashEntry>> {
        let pool = pool.to_string();
        self.short(move |inner| inner.io(&pool)?.trash_list()).await
    }

    /// Purges a trashed image now (long: removes every object). A missing entry
    /// succeeds. `HasDependents` while clones of its snapshots remain.
    #[instrument(skip_all, fields(pool, trash_id = id))]
    pub async fn purge_trash(&self, pool: &str, id: &str, ctl: &OpCtl) -> Result<()> {
        let (pool, id) = (pool.to_string(), id.to_string());
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io: PoolIo = inner.io(&pool)?;
            match io.trash_remove(&id, ctl) {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                // Still `moving`: a trash move a killed process cut short. Once nothing
                // in the directory carries the image any more, the move is over in all
                // but its state: set it back and remove.
                Err(e) if e.errno() == Some(libc::EUCLEAN) => {
                    let name = io
                        .trash_list()?
                        .into_iter()
                        .find(|t| t.id == id)
                        .map(|t| t.name);
                    if io
                        .list()?
                        .iter()
                        .any(|d| d.id == id || Some(&d.name) == name.as_ref())
                    {
                        return Err(e);
                    }
                    tracing::warn!(pool = %io.name(), trash_id = %id, "finishing the state of a trash move a killed process cut short");
                    match io.trash_state_normal(&id) {
                        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                        r => r?,
                    }
                    match io.trash_remove(&id, ctl) {
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                        r => r,
                    }
                }
                r => r,
            }
        })
        .await
    }

    /// Writes `data` at `offset` (short: meant for small writes and tests).
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, offset, len = data.len()))]
    pub async fn write(&self, spec: &ImageSpec, offset: u64, data: Vec<u8>) -> Result<()> {
        let spec = spec.clone();
        self.run(Lane::Long, &OpCtl::new(), move |inner, _| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            img.write(offset, &data)?;
            img.flush()
        })
        .await
    }

    /// Reads `len` bytes at `offset` of HEAD or of a snapshot.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, offset, len))]
    pub async fn read(
        &self,
        spec: &ImageSpec,
        snap: Option<&str>,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let (spec, snap) = (spec.clone(), snap.map(str::to_string));
        self.run(Lane::Long, &OpCtl::new(), move |inner, _| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, snap.as_deref()))?;
            let mut buf = vec![0u8; len];
            let n = img.read(offset, &mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
    }
}

/// A process killed inside librbd can leave a name in the pool's directory that no
/// image can be opened by: a trash move cut between removing the id object and the
/// directory entry, or a create cut before its header was written. Such a name shows in
/// `rbd ls` (and to reconciliation) forever. librbd's own remove cleans up half-made
/// creates; the directory entry of a half-done trash move (`trash_id` is the image's
/// id) is removed directly, leaving the trashed image alone. Nothing is done for a name
/// that is not listed.
fn repair_dangling_name(io: &PoolIo, name: &str, trash_id: Option<&str>) -> Result<()> {
    let Some(entry) = io.list()?.into_iter().find(|e| e.name == name) else {
        return Ok(());
    };
    tracing::warn!(pool = %io.name(), image = name, id = %entry.id, "repairing a directory entry with no image behind it");
    if trash_id == Some(entry.id.as_str()) {
        // The image itself is safe in the trash: only the name goes.
        return io.dir_remove(name, &entry.id);
    }
    match io.remove(name, &OpCtl::new()) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // librbd found no image: what the create made under the listed id goes,
            // then the name; unless the id is in the trash (librbd's remove parks an
            // image there with its data): then only the name.
            if !io.trash_contains(&entry.id)? {
                io.remove_object(&format!("rbd_object_map.{}", entry.id))?;
                io.remove_object(&format!("rbd_header.{}", entry.id))?;
            }
            io.dir_remove(name, &entry.id)
        }
        r => r,
    }
}

/// A create cut between writing the image's id object (`rbd_id.<name>`, librbd's first
/// step) and its header leaves an id object that no directory entry lists and no open
/// finds, so librbd's remove never sees it. Its header and object map (of a create cut
/// later, whose directory entry [`repair_dangling_name`] removed) go with it, the id
/// object last so a retry finds it again. An id that is in the trash (`trash_id`: a
/// trash move cut before it removed the id object) or that a listed image still carries
/// keeps its header; only the name's id object goes, or nothing.
fn remove_orphan_id_object(io: &PoolIo, name: &str, trash_id: Option<&str>) -> Result<()> {
    let oid = format!("rbd_id.{name}");
    let Some(raw) = io.read_object(&oid, 4096)? else {
        return Ok(());
    };
    // The id object holds the id as Ceph encodes a string: a little-endian u32 length
    // and its bytes.
    let id = raw
        .get(..4)
        .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| raw.get(4..4 + len))
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string);
    let Some(id) = id else {
        tracing::warn!(pool = %io.name(), object = %oid, "an id object that holds no image id is left alone");
        return Ok(());
    };
    if io.list()?.iter().any(|e| e.id == id) {
        tracing::warn!(pool = %io.name(), object = %oid, id = %id, "an id object whose id a listed image carries is left alone");
        return Ok(());
    }
    if trash_id != Some(id.as_str()) && !io.trash_contains(&id)? {
        tracing::warn!(pool = %io.name(), image = name, id = %id, "removing a half-made image's header and id object");
        io.remove_object(&format!("rbd_object_map.{id}"))?;
        io.remove_object(&format!("rbd_header.{id}"))?;
    } else {
        tracing::warn!(pool = %io.name(), image = name, id = %id, "removing the id object a cut trash move left behind");
    }
    io.remove_object(&oid)
}
