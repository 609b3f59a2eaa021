//! Golden files guard the wire format: each message version's JSON is checked in under
//! `rpc/golden/`. `UPDATE_GOLDEN=1` rewrites them (review the diff: a changed golden file
//! is a wire change).

use super::*;

fn ctx() -> RequestContext {
    RequestContext {
        project_id: Some("p1".into()),
        user_id: Some("u1".into()),
        is_admin: false,
    }
}

const V1_0: RpcVersion = RpcVersion { major: 1, minor: 0 };
const V1_1: RpcVersion = RpcVersion { major: 1, minor: 1 };

fn envelope(body: VolumeRequest) -> Envelope<VolumeRequest> {
    versioned(V1_0, body)
}

fn versioned(version: RpcVersion, body: VolumeRequest) -> Envelope<VolumeRequest> {
    Envelope {
        version,
        request_id: "req-00000000-0000-0000-0000-000000000001".into(),
        context: ctx(),
        body,
    }
}

fn samples() -> Vec<(&'static str, Envelope<VolumeRequest>)> {
    vec![
        (
            "v1.0_create_volume",
            envelope(
                CreateVolume {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                    size_gib: 10,
                    snapshot_id: None,
                    source_volid: None,
                    image_location: Some("rbd://fsid/images/img/snap".into()),
                }
                .into(),
            ),
        ),
        (
            "v1.0_delete_volume",
            envelope(
                DeleteVolume {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                }
                .into(),
            ),
        ),
        (
            "v1.0_initialize_connection",
            envelope(
                InitializeConnection {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                    connector: serde_json::json!({"host": "compute-1", "ip": "192.0.2.10"}),
                }
                .into(),
            ),
        ),
        (
            "v1.1_revert_to_snapshot",
            versioned(
                V1_1,
                VolumeRequest::RevertToSnapshot(SnapshotRef {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                    snapshot_id: "22222222-2222-2222-2222-222222222222".into(),
                }),
            ),
        ),
        (
            "v1.1_retype",
            versioned(
                V1_1,
                Retype {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                    new_type_id: Some("33333333-3333-3333-3333-333333333333".into()),
                    previous_status: "available".into(),
                }
                .into(),
            ),
        ),
        (
            "v1.1_manage_existing",
            versioned(
                V1_1,
                ManageExisting {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                    source_name: "legacy-disk".into(),
                }
                .into(),
            ),
        ),
        (
            "v1.1_unmanage_volume",
            versioned(
                V1_1,
                VolumeRequest::UnmanageVolume(DeleteVolume {
                    volume_id: "11111111-1111-1111-1111-111111111111".into(),
                }),
            ),
        ),
    ]
}

#[test]
fn messages_match_their_golden_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    for (name, msg) in samples() {
        let path = dir.join(format!("{name}.json"));
        let json = serde_json::to_string_pretty(&msg).unwrap() + "\n";
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &json).unwrap();
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(json, golden, "{name}: the wire format changed");
        let back: Envelope<VolumeRequest> = serde_json::from_str(&golden).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn versions_of_another_major_are_not_accepted() {
    let v = RpcVersion::VOLUME;
    assert!(v.accepts(V1_0) && v.accepts(V1_1));
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
