//! The data layer on SQLite, PostgreSQL and MariaDB: migrations, conditional status
//! updates under contention, quota reservations under contention, and pagination.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cinder_common::ops::{volume, Outcome, ResourceKind};
use cinder_common::status::VolumeStatus;
use cinder_db::{Db, Ending, Error, NewVolume, SortDir, VolumeListQuery, VolumeSortKey};
use cinder_migrations::{Migrator, MigratorTrait};

use crate::fixtures::{Backend, TestDb, BACKENDS};

fn new_volume(project: &str, name: Option<&str>, size: i32) -> NewVolume {
    NewVolume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project.into(),
        user_id: "user".into(),
        name: name.map(str::to_string),
        description: None,
        size_gib: size,
        availability_zone: Some("nova".into()),
        volume_type_id: None,
        ..Default::default()
    }
}

#[test]
fn the_schema_version_is_the_newest_migration() {
    assert_eq!(cinder_db::SCHEMA_VERSION, cinder_migrations::latest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_up_down_and_up_again_and_gate_the_services() {
    for backend in BACKENDS {
        let t = TestDb::empty(backend).await;
        let db = Db::connect(&t.url).await.unwrap();
        let e = db.check_schema().await.unwrap_err();
        assert!(
            e.to_string().contains("cinder-manage db sync"),
            "{backend:?}: {e}"
        );

        Migrator::up(db.connection(), None).await.unwrap();
        db.check_schema().await.unwrap();
        assert_eq!(
            db.schema_version().await.unwrap().as_deref(),
            Some(cinder_db::SCHEMA_VERSION)
        );
        db.create_volume(&new_volume("p", Some("a"), 1))
            .await
            .unwrap();

        Migrator::down(db.connection(), None).await.unwrap();
        assert!(
            db.check_schema().await.is_err(),
            "{backend:?}: nothing applied after down"
        );
        assert!(
            db.create_volume(&new_volume("p", Some("a"), 1))
                .await
                .is_err(),
            "{backend:?}: tables gone"
        );

        Migrator::up(db.connection(), None).await.unwrap();
        db.check_schema().await.unwrap();
        let v = db
            .create_volume(&new_volume("p", Some("b"), 2))
            .await
            .unwrap();
        assert_eq!(
            (v.status.as_str(), v.attach_status.as_str(), v.size),
            ("creating", "detached", 2)
        );
        t.drop(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_manage_syncs_and_reports_the_schema() {
    use cinder_migrations::MigratorTrait;
    let t = TestDb::empty(Backend::Sqlite).await;
    let settings: cinder_manage::Settings = cinder_common::config::load_with_env(None, []).unwrap();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let report = |words: Vec<String>| {
        let settings = &settings;
        async move {
            let mut out = Vec::new();
            cinder_manage::run_to(settings, &words, &mut out)
                .await
                .map(|()| String::from_utf8(out).unwrap())
        }
    };
    let names: Vec<String> = cinder_migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let newest = names.last().unwrap();
    // Empty: nothing applied, every migration pending, by name and in order.
    let before = report(args(&["--database-url", &t.url, "db", "version"]))
        .await
        .unwrap();
    let mut want = format!("current: none\npending: {}\n", names.len());
    for n in &names {
        want.push_str(&format!("  {n}\n"));
    }
    assert_eq!(before, want);
    let synced = report(args(&["--database-url", &t.url, "db", "sync"]))
        .await
        .unwrap();
    assert_eq!(synced, format!("schema at {newest}\n"));
    let after = report(args(&["--database-url", &t.url, "db", "version"]))
        .await
        .unwrap();
    assert_eq!(after, format!("current: {newest}\npending: 0\n"));
    let db = Db::connect(&t.url).await.unwrap();
    db.check_schema().await.unwrap();
    let e = report(args(&["--database-url", &t.url, "db", "nonsense"]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("usage: cinder-manage"), "{e}");
    t.drop(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_50_concurrent_transitions_exactly_one_wins() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let v = db
            .create_volume(&new_volume("p", Some("race"), 1))
            .await
            .unwrap();
        db.finish(None, &Ending::volume(&volume::CREATE, &v.id, Outcome::Done))
            .await
            .unwrap();
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (db, id) = (db.clone(), v.id.clone());
            tasks.push(tokio::spawn(
                async move { db.begin(&volume::DELETE, &id).await },
            ));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => wins += 1,
                Err(Error::Conflict { found, .. }) => assert_eq!(found, "deleting", "{backend:?}"),
                Err(e) => panic!("{backend:?}: {e}"),
            }
        }
        assert_eq!(wins, 1, "{backend:?}: exactly one transition wins");
        assert_eq!(
            db.volume(&v.id).await.unwrap().status,
            VolumeStatus::Deleting
        );
        let e = db.begin(&volume::DELETE, "no-such-id").await;
        assert!(
            matches!(e, Err(Error::NotFound { .. })),
            "{backend:?}: {e:?}"
        );
        let db = Arc::try_unwrap(db).unwrap();
        t.drop(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reservations_never_exceed_a_limit_of_ten() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let defaults: BTreeMap<String, i64> =
            [("volumes".to_string(), 10), ("gigabytes".to_string(), 1000)].into();
        let limits = db.quota_limits("p", &defaults).await.unwrap();
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (db, limits) = (db.clone(), limits.clone());
            tasks.push(tokio::spawn(async move {
                db.reserve(
                    "p",
                    &[("volumes", 1), ("gigabytes", 10)],
                    &limits,
                    Duration::from_secs(3600),
                )
                .await
            }));
        }
        let mut granted = Vec::new();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ids) => granted.push(ids),
                Err(Error::OverQuota {
                    resource, limit, ..
                }) => {
                    assert_eq!((resource.as_str(), limit), ("volumes", 10), "{backend:?}");
                    refused += 1;
                }
                Err(e) => panic!("{backend:?}: {e}"),
            }
        }
        assert_eq!((granted.len(), refused), (10, 40), "{backend:?}");
        let u = db.usage("p", "volumes").await.unwrap();
        assert_eq!((u.in_use, u.reserved), (0, 10), "{backend:?}");
        for ids in &granted {
            db.commit_reservations(ids).await.unwrap();
        }
        // Committing twice counts once.
        db.commit_reservations(&granted[0]).await.unwrap();
        let u = db.usage("p", "volumes").await.unwrap();
        assert_eq!(
            (u.in_use, u.reserved),
            (10, 0),
            "{backend:?}: usage equals the committed count"
        );
        assert_eq!(
            db.usage("p", "gigabytes").await.unwrap().in_use,
            100,
            "{backend:?}"
        );
        let db = Arc::try_unwrap(db).unwrap();
        t.drop(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollbacks_and_expiry_return_reservations() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let defaults: BTreeMap<String, i64> = [("volumes".to_string(), 2)].into();
        db.set_project_quota("p", "gigabytes", 5).await.unwrap();
        let limits = db.quota_limits("p", &defaults).await.unwrap();
        assert_eq!(limits.get("gigabytes"), Some(&5));

        // All or nothing: gigabytes do not fit, so volumes are not reserved either.
        let e = db
            .reserve(
                "p",
                &[("volumes", 1), ("gigabytes", 6)],
                &limits,
                Duration::from_secs(60),
            )
            .await;
        assert!(
            matches!(e, Err(Error::OverQuota { ref resource, .. }) if resource == "gigabytes"),
            "{backend:?}: {e:?}"
        );
        assert_eq!(
            db.usage("p", "volumes").await.unwrap().reserved,
            0,
            "{backend:?}"
        );

        // A failed create rolls its reservation back.
        let ids = db
            .reserve(
                "p",
                &[("volumes", 1), ("gigabytes", 5)],
                &limits,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        db.rollback_reservations(&ids).await.unwrap();
        assert_eq!(
            db.usage("p", "gigabytes").await.unwrap(),
            cinder_db::Usage {
                in_use: 0,
                reserved: 0
            }
        );

        // Expired reservations are reclaimed, and a late commit then counts nothing.
        let ids = db
            .reserve("p", &[("volumes", 2)], &limits, Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(db.expire_reservations().await.unwrap(), 1, "{backend:?}");
        db.commit_reservations(&ids).await.unwrap();
        assert_eq!(
            db.usage("p", "volumes").await.unwrap(),
            cinder_db::Usage {
                in_use: 0,
                reserved: 0
            }
        );
        // Unlimited (-1) resources always fit.
        let unlimited: BTreeMap<String, i64> = [("snapshots".to_string(), -1)].into();
        db.reserve(
            "p",
            &[("snapshots", 1000)],
            &unlimited,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        t.drop(db).await;
    }
}

/// Every page of a listing, following markers.
async fn all_pages(db: &Db, mut q: VolumeListQuery, mut between: impl FnMut(usize)) -> Vec<String> {
    let mut seen = Vec::new();
    let mut page = 0;
    loop {
        let rows = db.list_volumes(&q).await.unwrap();
        if rows.is_empty() {
            return seen;
        }
        q.marker = Some(rows.last().unwrap().id.clone());
        seen.extend(rows.into_iter().map(|r| r.id));
        between(page);
        page += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_return_every_row_exactly_once_in_order() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let mut ids = Vec::new();
        for i in 0..50 {
            let name = match i % 5 {
                0 => None,
                1 => Some("same".to_string()),
                _ => Some(format!("vol-{:02}", 49 - i)),
            };
            let v = db
                .create_volume(&new_volume(
                    if i % 10 == 9 { "other" } else { "p" },
                    name.as_deref(),
                    i % 7,
                ))
                .await
                .unwrap();
            ids.push(v);
        }
        let query = |sort: Vec<(VolumeSortKey, SortDir)>| VolumeListQuery {
            project_id: Some("p".into()),
            status: None,
            name: None,
            include_deleted: false,
            sort,
            marker: None,
            limit: 7,
            ..Default::default()
        };
        let project: HashSet<String> = ids
            .iter()
            .filter(|v| v.project_id == "p")
            .map(|v| v.id.clone())
            .collect();
        for sort in [
            vec![],
            vec![
                (VolumeSortKey::Name, SortDir::Asc),
                (VolumeSortKey::Size, SortDir::Desc),
            ],
            vec![(VolumeSortKey::Size, SortDir::Asc)],
            vec![
                (VolumeSortKey::Status, SortDir::Asc),
                (VolumeSortKey::CreatedAt, SortDir::Desc),
            ],
        ] {
            let paged = all_pages(&db, query(sort.clone()), |_| {}).await;
            let mut whole = query(sort.clone());
            whole.limit = 1000;
            let at_once: Vec<String> = db
                .list_volumes(&whole)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(
                paged, at_once,
                "{backend:?} {sort:?}: pages concatenate to the full order"
            );
            assert_eq!(
                paged.iter().cloned().collect::<HashSet<_>>(),
                project,
                "{backend:?} {sort:?}: every row once"
            );
            assert_eq!(paged.len(), project.len());
        }

        // Deleting rows while paging: rows deleted before they are reached are absent,
        // and every other row appears exactly once.
        let order = all_pages(
            &db,
            query(vec![(VolumeSortKey::Size, SortDir::Asc)]),
            |_| {},
        )
        .await;
        let doomed: Vec<String> = order.iter().skip(3).step_by(4).cloned().collect();
        let mut deleted: HashSet<String> = HashSet::new();
        let mut q = query(vec![(VolumeSortKey::Size, SortDir::Asc)]);
        let mut seen = Vec::new();
        loop {
            let rows = db.list_volumes(&q).await.unwrap();
            if rows.is_empty() {
                break;
            }
            q.marker = Some(rows.last().unwrap().id.clone());
            seen.extend(rows.into_iter().map(|r| r.id));
            // Delete the next few doomed rows (some on this page, some ahead).
            let next: Vec<String> = doomed
                .iter()
                .filter(|d| !deleted.contains(*d))
                .take(3)
                .cloned()
                .collect();
            for id in &next {
                db.finish(None, &Ending::volume(&volume::CREATE, id, Outcome::Failed))
                    .await
                    .unwrap();
                db.begin(&volume::DELETE, id).await.unwrap();
                db.finish(None, &Ending::volume(&volume::DELETE, id, Outcome::Done))
                    .await
                    .unwrap();
                deleted.insert(id.to_string());
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{backend:?}: no row twice");
        for id in &order {
            if !doomed.contains(id) {
                assert!(
                    unique.contains(id),
                    "{backend:?}: a surviving row was skipped"
                );
            }
        }
        // Admins still see the deleted rows.
        let mut admin = query(vec![(VolumeSortKey::Size, SortDir::Asc)]);
        admin.include_deleted = true;
        let with_deleted = all_pages(&db, admin, |_| {}).await;
        assert_eq!(with_deleted.len(), project.len(), "{backend:?}");
        let e = db
            .list_volumes(&VolumeListQuery {
                marker: Some("nope".into()),
                ..query(vec![])
            })
            .await;
        assert!(
            matches!(e, Err(Error::NotFound { kind: "marker", .. })),
            "{backend:?}"
        );
        t.drop(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_per_resource_and_redelivery_finds_its_own() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for service in 0..20 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.claim(&volume::DELETE.claim("vol-1"), service).await
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(c) => winners.push(c.service_id.unwrap()),
                Err(Error::Conflict { kind: "claim", .. }) => {}
                Err(e) => panic!("{backend:?}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "{backend:?}: one claim per resource");
        let owner = winners[0];
        // The owner's redelivered message finds its claim; another operation does not.
        let again = db
            .claim(&volume::DELETE.claim("vol-1"), owner)
            .await
            .unwrap();
        assert_eq!(again.service_id, Some(owner));
        assert!(
            db.claim(&volume::EXTEND.claim("vol-1"), owner)
                .await
                .is_err(),
            "{backend:?}"
        );
        db.claim(&volume::CREATE.claim("vol-2"), owner)
            .await
            .unwrap();
        let mine: Vec<String> = db
            .claims_of_service(owner)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.resource_id)
            .collect();
        assert_eq!(mine, ["vol-1", "vol-2"], "{backend:?}");
        db.release(&volume::DELETE.claim("vol-1"), owner)
            .await
            .unwrap();
        db.release(&volume::DELETE.claim("vol-1"), owner)
            .await
            .expect("releasing twice succeeds");
        let other = (owner + 1) % 20;
        db.claim(&volume::DELETE.claim("vol-1"), other)
            .await
            .unwrap();
        let db = Arc::try_unwrap(db).unwrap();
        t.drop(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_status_and_the_release_of_its_claim_are_one_transaction() {
    for backend in BACKENDS {
        let (t, db) = TestDb::migrated(backend).await;
        let v = db
            .create_volume(&new_volume("p", Some("tx"), 1))
            .await
            .unwrap();
        let claim = volume::CREATE.claim(&v.id);
        db.claim(&claim, 7).await.unwrap();
        // The status step succeeds, then the release finds the claim another service's:
        // the status must roll back with it.
        let e = db
            .finish(
                Some((&claim, 8)),
                &Ending::volume(&volume::CREATE, &v.id, Outcome::Done),
            )
            .await;
        assert!(
            matches!(e, Err(Error::ClaimNotHeld { holder: 8, .. })),
            "{backend:?}: {e:?}"
        );
        assert_eq!(
            db.volume(&v.id).await.unwrap().status,
            VolumeStatus::Creating,
            "{backend:?}: final without releasing its claim"
        );
        db.finish(
            Some((&claim, 7)),
            &Ending::volume(&volume::CREATE, &v.id, Outcome::Done),
        )
        .await
        .unwrap();
        assert_eq!(
            db.volume(&v.id).await.unwrap().status,
            VolumeStatus::Available,
            "{backend:?}"
        );
        assert!(
            db.claim_on(ResourceKind::Volume, &v.id)
                .await
                .unwrap()
                .is_none(),
            "{backend:?}: final and still claimed"
        );

        // A finish that finds its resource moved on changes nothing, the claim included.
        db.begin(&volume::DELETE, &v.id).await.unwrap();
        let claim = volume::DELETE.claim(&v.id);
        db.claim(&claim, 7).await.unwrap();
        db.reset_status(&v.id, VolumeStatus::Error).await.unwrap();
        let e = db
            .finish(
                Some((&claim, 7)),
                &Ending::volume(&volume::DELETE, &v.id, Outcome::Done),
            )
            .await;
        assert!(
            matches!(e, Err(Error::Conflict { .. })),
            "{backend:?}: {e:?}"
        );
        assert_eq!(
            db.volume(&v.id).await.unwrap().status,
            VolumeStatus::Error,
            "{backend:?}"
        );
        assert!(
            db.claim_on(ResourceKind::Volume, &v.id)
                .await
                .unwrap()
                .is_some(),
            "{backend:?}: the claim went without its status"
        );
        db.release(&claim, 7).await.unwrap();

        // An extend of an attached volume returns to in-use: `begin` records where it
        // came from (MariaDB evaluates assignments left to right: the previous status
        // must be read before the status is set).
        db.reset_status(&v.id, VolumeStatus::InUse).await.unwrap();
        db.begin(&volume::EXTEND, &v.id).await.unwrap();
        let row = db.volume(&v.id).await.unwrap();
        assert_eq!(
            (row.status, row.previous_status),
            (VolumeStatus::Extending, Some(VolumeStatus::InUse)),
            "{backend:?}"
        );
        db.finish(None, &Ending::volume(&volume::EXTEND, &v.id, Outcome::Done))
            .await
            .unwrap();
        assert_eq!(
            db.volume(&v.id).await.unwrap().status,
            VolumeStatus::InUse,
            "{backend:?}"
        );
        // A delete cannot begin from in-use.
        let e = db.begin(&volume::DELETE, &v.id).await;
        assert!(
            matches!(e, Err(Error::Conflict { ref found, .. }) if found == "in-use"),
            "{backend:?}: {e:?}"
        );
        t.drop(db).await;
    }
}

/// On SQLite, listings are read as one row that SQLite folds into JSON (`json_rows`):
/// every listing read that way equals the same listing read row by row, whatever the
/// texts hold, the sort, the marker and the offset, and none of them fell back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_sqlite_listings_equal_row_by_row_listings() {
    use cinder_db::{NewAttachment, SnapshotListQuery, SnapshotSortKey};
    let (t, db) = TestDb::migrated(Backend::Sqlite).await;
    let plain = db.reading_row_by_row();
    let names = [
        None,
        Some("plain"),
        Some("quote \" and back\\slash"),
        Some("new\nline\ttab"),
        Some("ünïcödé ✓ 😀"),
        Some(""),
        Some("'single' <b>&amp;</b>"),
    ];
    let types = [
        db.create_volume_type("gold", &Default::default())
            .await
            .unwrap()
            .id,
        db.create_volume_type("silver \"quoted\"", &Default::default())
            .await
            .unwrap()
            .id,
    ];
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut n = new_volume("p", names[i % names.len()], (i % 6) as i32 + 1);
        n.volume_type_id = types.get(i % 3).cloned();
        n.description = (i % 3 == 0).then(|| format!("desc {i} \u{0001} \\u0041"));
        n.bootable = i % 4 == 0;
        n.multiattach = i % 5 == 0;
        n.availability_zone = (i % 7 != 0).then(|| "nova".to_string());
        let v = db.create_volume(&n).await.unwrap();
        if i % 2 == 0 {
            db.move_volume_status(&v.id, &[VolumeStatus::Creating], VolumeStatus::Available)
                .await
                .unwrap();
        }
        // Every sixth volume attached, the multiattach ones among them twice.
        let servers = if i % 6 != 0 {
            0
        } else if n.multiattach {
            2
        } else {
            1
        };
        for _ in 0..servers {
            db.attach_now(
                &NewAttachment {
                    id: uuid::Uuid::new_v4().to_string(),
                    volume_id: v.id.clone(),
                    instance_uuid: Some(uuid::Uuid::new_v4().to_string()),
                    attached_host: Some("compute-1".into()),
                    attach_mode: Some("rw".into()),
                    mountpoint: Some("/dev/vdb".into()),
                },
                &[VolumeStatus::Available, VolumeStatus::InUse],
            )
            .await
            .unwrap();
        }
        if i % 3 == 1 {
            let md: BTreeMap<String, String> = [
                ("k\"ey".to_string(), format!("v{i}\n😀")),
                ("empty".to_string(), String::new()),
            ]
            .into();
            db.set_volume_metadata(&v.id, &md, false).await.unwrap();
            let s = db
                .create_snapshot_row(&uuid::Uuid::new_v4().to_string(), &v.id, "p", "u", 1)
                .await
                .unwrap();
            db.set_snapshot_metadata(&s.id, &md, true).await.unwrap();
        }
        ids.push(v.id);
    }
    let before = db.folded_reads();
    let query = |sort: Vec<(VolumeSortKey, SortDir)>| VolumeListQuery {
        project_id: Some("p".into()),
        sort,
        limit: 1000,
        ..Default::default()
    };
    let keys = [
        VolumeSortKey::CreatedAt,
        VolumeSortKey::Id,
        VolumeSortKey::Name,
        VolumeSortKey::Size,
        VolumeSortKey::Status,
        VolumeSortKey::UpdatedAt,
        VolumeSortKey::AvailabilityZone,
    ];
    let mut queries = vec![query(vec![])];
    for k in keys {
        for d in [SortDir::Asc, SortDir::Desc] {
            queries.push(query(vec![(k, d)]));
            queries.push(VolumeListQuery {
                marker: Some(ids[17].clone()),
                offset: 2,
                limit: 9,
                ..query(vec![(k, d), (VolumeSortKey::Size, SortDir::Asc)])
            });
        }
    }
    queries.push(VolumeListQuery {
        name_like: Some("\"".into()),
        bootable: Some(true),
        ..query(vec![])
    });
    queries.push(VolumeListQuery {
        project_id: Some("nobody".into()),
        ..query(vec![])
    });
    let mut rows_compared = 0;
    let (mut with_metadata, mut attached, mut typed) = (0, 0, 0);
    for q in &queries {
        let folded = db.list_volumes(q).await.unwrap();
        let rows = plain.list_volumes(q).await.unwrap();
        assert_eq!(folded, rows, "{q:?}");
        rows_compared += rows.len();
        let folded = db.list_volumes_detailed(q).await.unwrap();
        let (rows, details) = plain.list_volumes_detailed(q).await.unwrap();
        assert_eq!(folded.0, rows, "{q:?}");
        assert_eq!(folded.1, details, "{q:?}");
        with_metadata += details.metadata.len();
        attached += details.attachments.values().map(Vec::len).sum::<usize>();
        typed += details.type_names.len();
    }
    println!("details compared: {with_metadata} metadata sets, {attached} attachments, {typed} type names");
    assert!(
        with_metadata > 100 && attached > 50 && typed > 20,
        "the details held data"
    );
    let all = db.list_volumes(&query(vec![])).await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.iter().any(|v| v.status == VolumeStatus::InUse));
    assert_eq!(
        db.volume_metadata_many(&ids).await.unwrap(),
        plain.volume_metadata_many(&ids).await.unwrap()
    );
    assert_eq!(
        db.attachments_of_volumes(&ids).await.unwrap(),
        plain.attachments_of_volumes(&ids).await.unwrap()
    );
    for sort in [
        vec![],
        vec![(SnapshotSortKey::Name, SortDir::Asc)],
        vec![(SnapshotSortKey::Size, SortDir::Desc)],
    ] {
        let q = SnapshotListQuery {
            sort,
            limit: 1000,
            ..Default::default()
        };
        let snaps = db.list_snapshots(&q).await.unwrap();
        assert_eq!(snaps, plain.list_snapshots(&q).await.unwrap());
        let sids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
        assert_eq!(
            db.snapshot_metadata_many(&sids).await.unwrap(),
            plain.snapshot_metadata_many(&sids).await.unwrap()
        );
    }
    let (reads, fallbacks) = db.folded_reads();
    let folded_reads = reads - before.0;
    println!("{rows_compared} volume rows compared over {folded_reads} folded reads");
    assert!(rows_compared > 500, "the comparison held rows");
    assert!(
        folded_reads >= 2 * queries.len() as u64 + 5,
        "the folded path ran ({folded_reads} reads)"
    );
    assert_eq!(fallbacks, 0, "no folded read fell back to rows");
    assert_eq!(
        plain.folded_reads(),
        (0, 0),
        "the row-by-row copy folds nothing"
    );
    t.drop(db).await;
}
