//! Diff streams against the real `rbd` CLI: our export is what `rbd export-diff` writes,
//! `rbd import-diff` takes it, our import takes Ceph's streams and the fixtures, and bad
//! streams leave the target untouched.

use std::path::PathBuf;

use cinder_tests::{random_bytes, rbd, rbd_raw, MIB};
use rbd_driver::{CreateOptions, DiffExtent, ErrorKind, ImageSpec, OpCtl};

use crate::fixtures::{assert_same, ceph, Ceph};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "cinder-it-{}-{name}",
        uuid::Uuid::new_v4().simple()
    ))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/rbd-diff/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("fixture {path}: {e} (shared/ must sit beside the repository)"))
}

async fn create(c: &Ceph, prefix: &str, size: u64) -> ImageSpec {
    let img = c.image(prefix);
    c.driver
        .create_image(
            &img,
            &CreateOptions {
                size,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    img
}

/// Source image with data in several objects, a snapshot `s1`, more changes (writes,
/// a discard, growth) and snapshot `s2`.
async fn source(c: &Ceph) -> ImageSpec {
    let img = create(c, "diff-src", 32 * MIB).await;
    c.driver
        .write(&img, 0, random_bytes(1, 4096))
        .await
        .unwrap();
    c.driver
        .write(&img, 5 * MIB, random_bytes(2, 3 * MIB as usize))
        .await
        .unwrap();
    c.driver
        .write(&img, 20 * MIB + 512, random_bytes(3, 1000))
        .await
        .unwrap();
    c.driver.create_snapshot(&img.snap("s1")).await.unwrap();
    c.driver
        .write(&img, 6 * MIB, random_bytes(4, 64 * 1024))
        .await
        .unwrap();
    c.driver
        .write(&img, 12 * MIB, random_bytes(5, 4 * MIB as usize))
        .await
        .unwrap();
    c.driver.write(&img, 0, vec![0u8; 4096]).await.unwrap();
    c.driver
        .resize(&img, 40 * MIB, false, &OpCtl::new())
        .await
        .unwrap();
    c.driver
        .write(&img, 36 * MIB, random_bytes(6, 8192))
        .await
        .unwrap();
    c.driver.create_snapshot(&img.snap("s2")).await.unwrap();
    img
}

async fn export_ours(c: &Ceph, img: &ImageSpec, from: Option<&str>, to: Option<&str>) -> Vec<u8> {
    let (buf, stats) = c
        .driver
        .export_diff(img, from, to, Vec::new(), &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(stats.stream_bytes, buf.len() as u64);
    buf
}

fn export_cli(c: &Ceph, img: &ImageSpec, from: Option<&str>, to: &str) -> Vec<u8> {
    let path = tmp("cli.diff");
    let spec = format!("{img}@{to}");
    let mut args = vec!["export-diff", "--no-progress"];
    if let Some(f) = from {
        args.extend(["--from-snap", f]);
    }
    args.extend([spec.as_str(), path.to_str().unwrap()]);
    rbd(&c.conf, &args);
    let v = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    v
}

fn import_cli(c: &Ceph, img: &ImageSpec, stream: &[u8]) {
    let path = tmp("in.diff");
    std::fs::write(&path, stream).unwrap();
    rbd(
        &c.conf,
        &[
            "import-diff",
            "--no-progress",
            path.to_str().unwrap(),
            &img.to_string(),
        ],
    );
    std::fs::remove_file(&path).unwrap();
}

/// Every byte of an image (or snapshot), read through the CLI as an independent reader.
fn read_all_cli(c: &Ceph, spec: &str) -> Vec<u8> {
    let path = tmp("export.raw");
    rbd(
        &c.conf,
        &["export", "--no-progress", spec, path.to_str().unwrap()],
    );
    let v = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_export_is_byte_identical_to_rbd_export_diff() {
    let c = ceph().await;
    let img = source(c).await;
    let full = export_ours(c, &img, None, Some("s1")).await;
    assert_same(&full, &export_cli(c, &img, None, "s1"), "full diff at s1");
    let inc = export_ours(c, &img, Some("s1"), Some("s2")).await;
    assert_same(
        &inc,
        &export_cli(c, &img, Some("s1"), "s2"),
        "incremental s1..s2",
    );
    // The stream names its end points and the size at the end.
    assert!(inc.starts_with(b"rbd diff v1\nf\x02\x00\x00\x00s1t\x02\x00\x00\x00s2s"));
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbd_import_diff_accepts_our_stream_and_reexports_it_byte_identical() {
    let c = ceph().await;
    let img = source(c).await;
    let full = export_ours(c, &img, None, Some("s1")).await;
    let inc = export_ours(c, &img, Some("s1"), Some("s2")).await;

    let target = create(c, "diff-cli-target", 32 * MIB).await;
    import_cli(c, &target, &full);
    import_cli(c, &target, &inc);
    assert_same(
        &export_cli(c, &target, None, "s1"),
        &full,
        "re-export of the full diff",
    );
    assert_same(
        &export_cli(c, &target, Some("s1"), "s2"),
        &inc,
        "re-export of the incremental",
    );
    assert_same(
        &read_all_cli(c, &format!("{target}@s2")),
        &read_all_cli(c, &format!("{img}@s2")),
        "image data",
    );
    c.purge(&target).await;
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_import_applies_streams_from_rbd_export_diff() {
    let c = ceph().await;
    let img = source(c).await;
    let full = export_cli(c, &img, None, "s1");
    let inc = export_cli(c, &img, Some("s1"), "s2");

    let target = create(c, "diff-our-target", 8 * MIB).await;
    let stats = c
        .driver
        .import_diff(&target, &full[..], &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(
        (stats.to_snap.as_deref(), stats.size),
        (Some("s1"), 32 * MIB),
        "s resizes the target"
    );
    let stats = c
        .driver
        .import_diff(&target, &inc[..], &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(
        (stats.to_snap.as_deref(), stats.size),
        (Some("s2"), 40 * MIB)
    );
    assert_same(
        &read_all_cli(c, &format!("{target}@s1")),
        &read_all_cli(c, &format!("{img}@s1")),
        "image data",
    );
    assert_same(
        &read_all_cli(c, &format!("{target}@s2")),
        &read_all_cli(c, &format!("{img}@s2")),
        "image data",
    );
    let names: Vec<String> = c
        .driver
        .list_snapshots(&target)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["s1", "s2"],
        "only the end snapshots, no guard left behind"
    );

    // Applying the same incremental again is refused: its end snapshot exists.
    let e = c
        .driver
        .import_diff(&target, &inc[..], &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    c.purge(&target).await;
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_fixture_streams_import_and_read_back() {
    let c = ceph().await;
    let target = create(c, "fixtures", 16 * MIB).await;
    c.driver
        .import_diff(&target, &fixture("full_s1.diff")[..], &OpCtl::new())
        .await
        .unwrap();
    assert_same(
        &c.driver.read(&target, Some("s1"), 0, 4096).await.unwrap(),
        &[b'A'; 4096],
        "s1 data",
    );
    let inc = fixture("inc_s1_s2.diff");
    c.driver
        .import_diff(&target, &inc[..], &OpCtl::new())
        .await
        .unwrap();
    assert_same(
        &c.driver.read(&target, Some("s2"), 0, 4096).await.unwrap(),
        &[0; 4096],
        "s2 zeroes",
    );
    // The 'w' record's payload is the last 8192 bytes before the final 'e'.
    let payload = &inc[inc.len() - 1 - 8192..inc.len() - 1];
    assert_same(
        &c.driver
            .read(&target, Some("s2"), 4 * MIB, 8192)
            .await
            .unwrap(),
        payload,
        "s2 data",
    );
    // Our re-export of what we imported is the fixture again.
    assert_same(
        &export_ours(c, &target, Some("s1"), Some("s2")).await,
        &inc,
        "our re-export",
    );

    let child = create(c, "fixture-child", 16 * MIB).await;
    let cf = fixture("child_full.diff");
    let stats = c
        .driver
        .import_diff(&child, &cf[..], &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(stats.to_snap.as_deref(), Some("c1"));
    let payload = &cf[cf.len() - 1 - 8192..cf.len() - 1];
    assert_same(
        &c.driver
            .read(&child, Some("c1"), 4 * MIB, 8192)
            .await
            .unwrap(),
        payload,
        "child data",
    );
    assert_same(
        &c.driver.read(&child, Some("c1"), 0, 4096).await.unwrap(),
        &[0; 4096],
        "child zeroes",
    );
    c.purge(&child).await;
    c.purge(&target).await;
}

/// What a failed import must leave as it was: every byte, the snapshots, the size.
#[derive(Debug, PartialEq)]
struct TargetState {
    data: Vec<u8>,
    snaps: Vec<rbd_driver::SnapInfo>,
    size: u64,
}

async fn state(c: &Ceph, target: &ImageSpec) -> TargetState {
    TargetState {
        data: read_all_cli(c, &target.to_string()),
        snaps: c.driver.list_snapshots(target).await.unwrap(),
        size: c.driver.image_info(target).await.unwrap().size,
    }
}

/// Imports `stream`, expects an error of `kind`, and checks the target is unchanged.
async fn assert_rejected_unchanged(
    c: &Ceph,
    target: &ImageSpec,
    stream: &[u8],
    kind: ErrorKind,
    what: &str,
) {
    let before = state(c, target).await;
    let e = c
        .driver
        .import_diff(target, stream, &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), kind, "{what}: {e}");
    let after = state(c, target).await;
    assert_same(
        &after.data,
        &before.data,
        &format!("{what}: data unchanged"),
    );
    assert_eq!(
        after.snaps, before.snaps,
        "{what}: no end snapshot, no guard"
    );
    assert_eq!(after.size, before.size, "{what}: size unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_streams_are_rejected_and_leave_the_target_unchanged() {
    let c = ceph().await;
    let img = source(c).await;
    let inc = export_cli(c, &img, Some("s1"), "s2");
    let full = export_cli(c, &img, None, "s1");
    let target = create(c, "diff-bad", 32 * MIB).await;
    c.driver
        .import_diff(&target, &full[..], &OpCtl::new())
        .await
        .unwrap();

    // Find where the first data record starts (after banner, f, t and s records).
    let header_len = 12 + (1 + 4 + 2) * 2 + 9;
    let first_w = header_len;
    let mut reordered = inc[..header_len].to_vec();
    reordered.extend(rbd_driver::diff::encode_extent(true, 8 * MIB, 4));
    reordered.extend([1, 2, 3, 4]);
    reordered.extend(rbd_driver::diff::encode_extent(true, 4 * MIB, 4));
    reordered.extend([1, 2, 3, 4]);
    reordered.push(b'e');
    let mut overlapping = inc[..header_len].to_vec();
    overlapping.extend(rbd_driver::diff::encode_extent(true, 4 * MIB, 4096));
    overlapping.extend(vec![9; 4096]);
    overlapping.extend(rbd_driver::diff::encode_extent(false, 4 * MIB + 100, 10));
    overlapping.push(b'e');
    let mut oversized = inc[..header_len].to_vec();
    oversized.extend(rbd_driver::diff::encode_extent(true, 40 * MIB - 2, 4));
    oversized.extend([1, 2, 3, 4]);
    oversized.push(b'e');
    let mut trailing = inc.clone();
    trailing.extend(b"garbage");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated mid-data", inc[..inc.len() / 2].to_vec()),
        ("missing end record", inc[..inc.len() - 1].to_vec()),
        ("truncated in the header", inc[..first_w - 3].to_vec()),
        ("reordered extents", reordered),
        ("overlapping extents", overlapping),
        ("extent beyond the size", oversized),
        ("trailing garbage", trailing),
    ];
    for (what, stream) in cases {
        assert_rejected_unchanged(c, &target, &stream, ErrorKind::InvalidInput, what).await;
    }
    // A stream whose start snapshot the target lacks is refused before any change.
    let fresh = create(c, "diff-nofrom", 32 * MIB).await;
    let e = c
        .driver
        .import_diff(&fresh, &inc[..], &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // rbd import-diff agrees the good stream still applies afterwards.
    c.driver
        .import_diff(&target, &inc[..], &OpCtl::new())
        .await
        .unwrap();
    assert_same(
        &read_all_cli(c, &format!("{target}@s2")),
        &read_all_cli(c, &format!("{img}@s2")),
        "image data",
    );
    // And rbd import-diff itself rejects what we reject as truncated.
    let cut = tmp("cut.diff");
    std::fs::write(&cut, &inc[..inc.len() - 1]).unwrap();
    let out = rbd_raw(
        &c.conf,
        &[
            "import-diff",
            "--no-progress",
            cut.to_str().unwrap(),
            &fresh.to_string(),
        ],
    );
    std::fs::remove_file(&cut).unwrap();
    assert!(!out.status.success());
    for i in [&fresh, &target, &img] {
        c.purge(i).await;
    }
}

/// `stream` with its end snapshot renamed (same length).
fn retarget(stream: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut v = stream.to_vec();
    let at = v
        .windows(from.len() + 1)
        .position(|w| w[0..from.len()] == *from.as_bytes())
        .unwrap();
    v[at..at + to.len()].copy_from_slice(to.as_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_over_existing_data_restores_it_and_leaves_no_guard() {
    let c = ceph().await;
    let img = source(c).await;
    let full = export_cli(c, &img, None, "s1");
    let inc = export_cli(c, &img, Some("s1"), "s2");
    let target = create(c, "diff-guard", 32 * MIB).await;
    c.driver
        .import_diff(&target, &full[..], &OpCtl::new())
        .await
        .unwrap();
    // HEAD moves on after s1: an incremental failing now must keep this write.
    c.driver
        .write(&target, 30 * MIB, random_bytes(42, 4096))
        .await
        .unwrap();
    let broken_inc = &inc[..inc.len() - 1];
    assert_rejected_unchanged(
        c,
        &target,
        broken_inc,
        ErrorKind::InvalidInput,
        "writes after the start snapshot survive",
    )
    .await;
    // A full stream (no start snapshot) over an image with data, cut short: the guard case.
    let other_full = retarget(&full, "s1", "x1");
    assert_rejected_unchanged(
        c,
        &target,
        &other_full[..other_full.len() / 2],
        ErrorKind::InvalidInput,
        "restored from the guard",
    )
    .await;
    c.purge(&target).await;
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_import_rolls_back() {
    let c = ceph().await;
    let img = create(c, "cancel-src", 64 * MIB).await;
    c.driver
        .write(&img, 0, random_bytes(11, 32 * MIB as usize))
        .await
        .unwrap();
    c.driver.create_snapshot(&img.snap("s1")).await.unwrap();
    let full = export_ours(c, &img, None, Some("s1")).await;
    let target = create(c, "cancel-dst", 64 * MIB).await;
    let ctl = OpCtl::new();
    // A source that delivers half the stream and then cancels the operation.
    let half = full.len() / 2;
    let cancel = ctl.cancel.clone();
    let (mut w, r) = tokio::io::duplex(1 << 20);
    let feed = full.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        w.write_all(&feed[..half]).await.unwrap();
        cancel.cancel();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(w);
    });
    let e = c.driver.import_diff(&target, r, &ctl).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(c.driver.list_snapshots(&target).await.unwrap().is_empty());
    assert!(
        c.driver
            .read(&target, None, 0, 4 * MIB as usize)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0),
        "rolled back"
    );
    c.purge(&target).await;
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_extents_list_what_changed() {
    let c = ceph().await;
    let img = create(c, "extents", 16 * MIB).await;
    c.driver.create_snapshot(&img.snap("a")).await.unwrap();
    c.driver
        .write(&img, 4 * MIB, random_bytes(9, 8192))
        .await
        .unwrap();
    let ext = c
        .driver
        .diff_extents(&img, None, Some("a"), false, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(
        ext,
        vec![DiffExtent {
            offset: 4 * MIB,
            length: 8192,
            exists: true
        }]
    );
    let whole = c
        .driver
        .diff_extents(&img, None, Some("a"), true, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(
        whole,
        vec![DiffExtent {
            offset: 4 * MIB,
            length: 4 * MIB,
            exists: true
        }]
    );
    c.purge(&img).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_variants_write_and_read_the_same_streams() {
    let c = ceph().await;
    let img = source(c).await;
    let path = tmp("file.diff");
    let stats = c
        .driver
        .export_diff_to_file(&img, Some("s1"), Some("s2"), &path, &OpCtl::new())
        .await
        .unwrap();
    let written = std::fs::read(&path).unwrap();
    assert_eq!(stats.stream_bytes, written.len() as u64);
    assert_same(
        &written,
        &export_cli(c, &img, Some("s1"), "s2"),
        "file export",
    );
    // The file must be new, as with rbd export-diff.
    let e = c
        .driver
        .export_diff_to_file(&img, Some("s1"), Some("s2"), &path, &OpCtl::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");

    let target = create(c, "diff-file", 32 * MIB).await;
    let full = tmp("full.diff");
    c.driver
        .export_diff_to_file(&img, None, Some("s1"), &full, &OpCtl::new())
        .await
        .unwrap();
    c.driver
        .import_diff_from_file(&target, &full, &OpCtl::new())
        .await
        .unwrap();
    c.driver
        .import_diff_from_file(&target, &path, &OpCtl::new())
        .await
        .unwrap();
    assert_same(
        &read_all_cli(c, &format!("{target}@s2")),
        &read_all_cli(c, &format!("{img}@s2")),
        "imported from files",
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&full).unwrap();
    c.purge(&target).await;
    c.purge(&img).await;
}

/// The digest of an image's bytes, computed here block by block (independently of the
/// driver's stream-side computation).
fn digest_of(bytes: &[u8]) -> rbd_driver::diff::ContentDigest {
    let mut d = rbd_driver::diff::ContentDigest::zero(bytes.len() as u64);
    for (i, b) in bytes
        .chunks(rbd_driver::diff::DIGEST_BLOCK as usize)
        .enumerate()
    {
        d.add_block(i as u64, b);
    }
    d
}

/// A full backup and two incrementals streamed in process into a base image in another
/// pool (one restore point each), with writes, a discard and growth between them: each
/// point's digest equals the source's at that point, each incremental moves about what
/// changed, every point restores byte-identical to the source at that time without a
/// snapshot on the restored image, and a base image changed behind our back fails the
/// restore instead of restoring other data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_chain_streamed_in_process_restores_every_point_and_detects_corruption() {
    use rbd_driver::Digesting;
    let c = ceph().await;
    let src = create(c, "bk-src", 32 * MIB).await;
    let base = ImageSpec::new(&c.images_pool, cinder_tests::unique("bk-base"));
    c.driver
        .create_image(
            &base,
            &CreateOptions {
                size: 32 * MIB,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ctl = OpCtl::new();
    // Point 1: data in object 0 (never written again) and further up.
    c.driver
        .write(&src, 0, random_bytes(11, MIB as usize))
        .await
        .unwrap();
    c.driver
        .write(&src, 9 * MIB + 512, random_bytes(12, 3 * MIB as usize))
        .await
        .unwrap();
    c.driver.create_snapshot(&src.snap("b1")).await.unwrap();
    let s1 = c
        .driver
        .send_diff(
            &src,
            "b1",
            None,
            Some("b1"),
            Digesting::Full,
            &c.driver,
            &base,
            &ctl,
        )
        .await
        .unwrap();
    let at1 = read_all_cli(c, &format!("{src}@b1"));
    assert_eq!(
        s1.digest,
        digest_of(&at1),
        "the full backup's digest is the source's"
    );
    // What `rbd export-diff` carries: the allocated parts of the objects written.
    assert!(
        (4 * MIB..=6 * MIB).contains(&s1.export.data_bytes),
        "a full stream carries the written data: {:?}",
        s1.export
    );
    // Point 2: an overwrite, a discard, growth and a write in the new space.
    c.driver
        .write(&src, 10 * MIB, random_bytes(13, 64 * 1024))
        .await
        .unwrap();
    c.driver
        .write(&src, 11 * MIB, vec![0u8; 8192])
        .await
        .unwrap();
    c.driver.resize(&src, 48 * MIB, false, &ctl).await.unwrap();
    c.driver
        .write(&src, 40 * MIB + 4096, random_bytes(14, 2 * MIB as usize))
        .await
        .unwrap();
    c.driver.create_snapshot(&src.snap("b2")).await.unwrap();
    let s2 = c
        .driver
        .send_diff(
            &src,
            "b2",
            Some("b1"),
            Some("b2"),
            Digesting::Since(s1.digest),
            &c.driver,
            &base,
            &ctl,
        )
        .await
        .unwrap();
    let at2 = read_all_cli(c, &format!("{src}@b2"));
    assert_eq!(
        s2.digest,
        digest_of(&at2),
        "the incremental's digest is the source's"
    );
    let changed = 64 * 1024 + 8192 + 2 * MIB;
    assert!(
        s2.export.data_bytes + 8192 >= changed && s2.export.data_bytes <= changed + changed / 20,
        "the incremental moved {} bytes for {changed} changed",
        s2.export.data_bytes
    );
    // Point 3: a small change.
    c.driver
        .write(&src, 20 * MIB, random_bytes(15, 4096))
        .await
        .unwrap();
    c.driver.create_snapshot(&src.snap("b3")).await.unwrap();
    let s3 = c
        .driver
        .send_diff(
            &src,
            "b3",
            Some("b2"),
            Some("b3"),
            Digesting::Since(s2.digest),
            &c.driver,
            &base,
            &ctl,
        )
        .await
        .unwrap();
    let at3 = read_all_cli(c, &format!("{src}@b3"));
    assert_eq!(s3.digest, digest_of(&at3));
    assert!(s3.export.data_bytes <= 8192, "{:?}", s3.export);
    let snaps: Vec<String> = c
        .driver
        .list_snapshots(&base)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(snaps, ["b1", "b2", "b3"], "one restore point per backup");

    // Every point restores byte-identical, at its size, with no snapshot left on it.
    for (point, digest, want) in [
        ("b1", s1.digest, &at1),
        ("b2", s2.digest, &at2),
        ("b3", s3.digest, &at3),
    ] {
        let target = create(c, "bk-restore", MIB).await;
        c.driver
            .send_diff(
                &base,
                point,
                None,
                None,
                Digesting::Expect(digest),
                &c.driver,
                &target,
                &ctl,
            )
            .await
            .unwrap();
        assert_same(&read_all_cli(c, &target.to_string()), want, point);
        assert!(
            c.driver.list_snapshots(&target).await.unwrap().is_empty(),
            "{point}"
        );
        c.purge(&target).await;
    }

    // Object 0 of the base, overwritten without a snapshot context: every restore point
    // now reads other data there. The restore fails and names the digests.
    let info: serde_json::Value = serde_json::from_slice(&rbd(
        &c.conf,
        &["info", "--format", "json", &base.to_string()],
    ))
    .unwrap();
    let object = format!("rbd_data.{}.{:016x}", info["id"].as_str().unwrap(), 0);
    let garbage = tmp("garbage");
    std::fs::write(&garbage, random_bytes(99, 4096)).unwrap();
    cinder_tests::rados(
        &c.conf,
        &[
            "-p",
            &c.images_pool,
            "put",
            &object,
            garbage.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&garbage).unwrap();
    let target = create(c, "bk-restore", MIB).await;
    let e = c
        .driver
        .send_diff(
            &base,
            "b3",
            None,
            None,
            Digesting::Expect(s3.digest),
            &c.driver,
            &target,
            &ctl,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, rbd_driver::Error::DigestMismatch { .. }), "{e}");
    assert_eq!(
        c.driver.image_info(&target).await.unwrap().size,
        MIB,
        "a refused restore leaves the target at its size"
    );
    for img in [&target, &base, &src] {
        c.purge(img).await;
    }
}
