//! Golden files guard the wire format: every message of every topic has its JSON checked
//! in under `rpc/golden/` (`v<version it came in>_<method>.json`). `UPDATE_GOLDEN=1`
//! rewrites them (review the diff: a changed golden file is a wire change); under CI it
//! is refused, so a rewrite can never pass there.

use super::*;

fn ctx() -> RequestContext {
    RequestContext {
        project_id: Some("p1".into()),
        user_id: Some("u1".into()),
        is_admin: false,
        ..Default::default()
    }
}

const V1_0: RpcVersion = RpcVersion { major: 1, minor: 0 };
const V1_1: RpcVersion = RpcVersion { major: 1, minor: 1 };
const V1_2: RpcVersion = RpcVersion { major: 1, minor: 2 };
const V1_3: RpcVersion = RpcVersion { major: 1, minor: 3 };
const V1_4: RpcVersion = RpcVersion { major: 1, minor: 4 };
const V1_5: RpcVersion = RpcVersion { major: 1, minor: 5 };
const VOL: &str = "11111111-1111-1111-1111-111111111111";
const SNAP: &str = "22222222-2222-2222-2222-222222222222";

fn envelope<R>(version: RpcVersion, body: R) -> Envelope<R> {
    Envelope {
        version,
        request_id: "req-00000000-0000-0000-0000-000000000001".into(),
        context: ctx(),
        body,
    }
}

fn connector() -> serde_json::Value {
    serde_json::json!({"host": "compute-1", "ip": "192.0.2.10"})
}

/// One sample per message of the volume topic, with the version it came in.
fn volume_samples() -> Vec<(RpcVersion, VolumeRequest)> {
    let (v, s) = (VOL.to_string(), SNAP.to_string());
    vec![
        (
            V1_0,
            CreateVolume {
                volume_id: v.clone(),
                size_gib: 10,
                snapshot_id: None,
                source_volid: None,
                image_location: Some("rbd://fsid/images/img/snap".into()),
                image: None,
                schedule: None,
            }
            .into(),
        ),
        (
            V1_0,
            DeleteVolume {
                volume_id: v.clone(),
            }
            .into(),
        ),
        (
            V1_0,
            CreateSnapshot {
                volume_id: v.clone(),
                snapshot_id: s.clone(),
            }
            .into(),
        ),
        (
            V1_0,
            DeleteSnapshot {
                volume_id: v.clone(),
                snapshot_id: s.clone(),
            }
            .into(),
        ),
        (
            V1_0,
            ExtendVolume {
                volume_id: v.clone(),
                new_size_gib: 20,
            }
            .into(),
        ),
        (
            V1_0,
            InitializeConnection {
                volume_id: v.clone(),
                connector: connector(),
            }
            .into(),
        ),
        (
            V1_0,
            TerminateConnection {
                volume_id: v.clone(),
                connector: connector(),
            }
            .into(),
        ),
        (V1_0, GetCapabilities {}.into()),
        (
            V1_1,
            RevertToSnapshot {
                volume_id: v.clone(),
                snapshot_id: s.clone(),
            }
            .into(),
        ),
        (
            V1_1,
            Retype {
                volume_id: v.clone(),
                new_type_id: Some("33333333-3333-3333-3333-333333333333".into()),
                previous_status: "available".into(),
            }
            .into(),
        ),
        (
            V1_1,
            ManageExisting {
                volume_id: v.clone(),
                source_name: "legacy-disk".into(),
            }
            .into(),
        ),
        (
            V1_1,
            UnmanageVolume {
                volume_id: v.clone(),
            }
            .into(),
        ),
        (
            V1_2,
            CreateVolume {
                volume_id: v.clone(),
                size_gib: 10,
                snapshot_id: None,
                source_volid: None,
                image_location: None,
                image: None,
                schedule: Some(Box::new(schedule_create(&v))),
            }
            .into(),
        ),
        (V1_3, GetManageableVolumes {}.into()),
        (
            V1_5,
            Reimage {
                volume_id: v.clone(),
                image: image(),
                image_metadata: [("image_id".to_string(), image().id)].into_iter().collect(),
            }
            .into(),
        ),
        (
            V1_5,
            CopyVolumeToImage {
                volume_id: v.clone(),
                image_id: "44444444-4444-4444-4444-444444444444".into(),
                disk_format: "qcow2".into(),
                container_format: "bare".into(),
            }
            .into(),
        ),
        (
            V1_4,
            CreateVolume {
                volume_id: v.clone(),
                size_gib: 10,
                snapshot_id: None,
                source_volid: None,
                image_location: None,
                image: Some(Box::new(image())),
                schedule: Some(Box::new(ScheduleCreateVolume {
                    image: Some(Box::new(image())),
                    ..schedule_create(&v)
                })),
            }
            .into(),
        ),
    ]
}

/// The scheduler's create request, second attempt.
fn schedule_create(v: &str) -> ScheduleCreateVolume {
    ScheduleCreateVolume {
        volume_id: v.to_string(),
        size_gib: 10,
        volume_type: Some(VolumeTypeSpec {
            id: "33333333-3333-3333-3333-333333333333".into(),
            name: "fast".into(),
            extra_specs: [("volume_backend_name".to_string(), "ceph-fast".to_string())]
                .into_iter()
                .collect(),
        }),
        availability_zone: Some("nova".into()),
        snapshot_id: None,
        source_volid: None,
        image_location: None,
        image: None,
        scheduler_hints: SchedulerHints {
            same_host: None,
            different_host: Some(vec![SNAP.into()]),
        },
        retry: Retry {
            num_attempts: 1,
            backends: vec!["node1@fast#ceph-fast".into()],
            exc: Some("the create failed on node1@fast".into()),
        },
    }
}

/// A raw image in RBD, with a second location.
fn image() -> ImageSource {
    ImageSource {
        id: "44444444-4444-4444-4444-444444444444".into(),
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        size: Some(4 << 20),
        locations: vec![
            "rbd://fsid/images/44444444-4444-4444-4444-444444444444/snap".into(),
            "file:///var/lib/glance/images/44444444-4444-4444-4444-444444444444".into(),
        ],
    }
}

/// One sample per message of the scheduler topic.
fn scheduler_samples() -> Vec<(RpcVersion, SchedulerRequest)> {
    vec![
        (V1_0, schedule_create(VOL).into()),
        (
            V1_1,
            ScheduleCreateVolume {
                image: Some(Box::new(image())),
                ..schedule_create(VOL)
            }
            .into(),
        ),
        (
            V1_0,
            GetPools {
                detail: true,
                name: None,
                volume_type: None,
            }
            .into(),
        ),
    ]
}

/// Checks each sample against its golden file, and that every method of the topic has
/// one.
fn check_topic<T: Topic>(samples: Vec<(RpcVersion, T::Request)>, methods: &[&str])
where
    T::Request: PartialEq,
{
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "UPDATE_GOLDEN is set under CI: golden files are only rewritten by hand"
    );
    let mut covered: Vec<&str> = Vec::new();
    for (version, body) in samples {
        assert!(
            T::VERSION.accepts(version),
            "{version} is not a version of {}",
            T::NAME
        );
        let method = body.method();
        assert_eq!(
            T::version_of(&body),
            version,
            "{method} goes out at another version than the one it came in"
        );
        covered.push(method);
        let msg = envelope(version, body);
        // The volume topic came first and keeps its unprefixed names.
        let prefix = match T::NAME {
            "volume" => String::new(),
            other => format!("{other}_"),
        };
        let path = dir.join(format!("{prefix}v{version}_{method}.json"));
        let json = serde_json::to_string_pretty(&msg).unwrap() + "\n";
        assert!(
            json.contains(&format!("\"method\": \"{method}\"")),
            "{method}: the method name on the wire is not the one the type names"
        );
        if update {
            std::fs::write(&path, &json).unwrap();
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(json, golden, "{method}: the wire format changed");
        let back: Envelope<T::Request> = serde_json::from_str(&golden).unwrap();
        assert!(back == msg, "{method}: does not read back");
    }
    for m in methods {
        assert!(
            covered.contains(m),
            "{} method {m} has no golden file",
            T::NAME
        );
    }
}

/// One sample per message of the backup topic.
fn backup_samples() -> Vec<(RpcVersion, BackupRequest)> {
    const BACKUP: &str = "33333333-3333-3333-3333-333333333333";
    vec![
        (
            V1_0,
            CreateBackup {
                backup_id: BACKUP.into(),
            }
            .into(),
        ),
        (
            V1_0,
            DeleteBackup {
                backup_id: BACKUP.into(),
            }
            .into(),
        ),
        (
            V1_0,
            RestoreBackup {
                backup_id: BACKUP.into(),
                volume_id: VOL.into(),
                new_volume: true,
            }
            .into(),
        ),
    ]
}

#[test]
fn every_message_of_every_topic_matches_its_golden_file() {
    check_topic::<BackupTopic>(backup_samples(), BackupRequest::METHODS);
    check_topic::<VolumeTopic>(volume_samples(), VolumeRequest::METHODS);
    check_topic::<SchedulerTopic>(scheduler_samples(), SchedulerRequest::METHODS);
}

#[test]
fn versions_of_another_major_are_not_accepted() {
    let v = VolumeTopic::VERSION;
    assert!(v.accepts(V1_0) && v.accepts(V1_1) && v.accepts(V1_2) && v.accepts(V1_3));
    assert!(!v.accepts(RpcVersion { major: 2, minor: 0 }));
    assert!(
        !v.accepts(RpcVersion {
            major: 1,
            minor: v.minor + 1
        }),
        "a newer minor may carry methods we lack"
    );
    assert_eq!(serde_json::to_string(&V1_0).unwrap(), "\"1.0\"");
    assert!(serde_json::from_str::<RpcVersion>("\"one\"").is_err());
}

#[test]
fn unknown_methods_are_an_error_not_a_default() {
    let e = serde_json::from_str::<VolumeRequest>(r#"{"method": "format_disk", "args": {}}"#);
    assert!(e.is_err());
}

#[test]
fn a_callers_token_travels_in_the_context_but_never_shows_in_debug_output() {
    let with = RequestContext {
        auth_token: Some(cinder_common::settings::Secret::new("gAAAAAB-token")),
        ..ctx()
    };
    let wire = serde_json::to_value(&with).unwrap();
    assert_eq!(wire["auth_token"], "gAAAAAB-token");
    let back: RequestContext = serde_json::from_value(wire).unwrap();
    assert_eq!(back, with);
    assert!(!format!("{with:?}").contains("gAAAAAB"));
    // Without one the key is absent: older peers read the message unchanged.
    let wire = serde_json::to_value(ctx()).unwrap();
    assert!(wire.get("auth_token").is_none(), "{wire}");
}
