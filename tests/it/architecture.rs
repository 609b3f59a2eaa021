//! The crate dependency graph has only the allowed edges (ARCHITECTURE.md).

use std::collections::BTreeMap;

/// Workspace crate → the workspace crates it may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("cinder-common", &[]),
    ("rbd-sys", &[]),
    ("cinder-rbd-driver", &["rbd-sys"]),
    ("cinder-migrations", &[]),
    ("cinder-db", &["cinder-common"]),
    ("cinder-rpc", &["cinder-common"]),
    ("cinder-glance", &["cinder-common"]),
    (
        "cinder-service",
        &["cinder-common", "cinder-rpc", "cinder-db"],
    ),
    ("cinder-drivers", &["cinder-common", "cinder-rbd-driver"]),
    (
        "cinder-api",
        &["cinder-common", "cinder-rpc", "cinder-db", "cinder-glance"],
    ),
    (
        "cinder-scheduler",
        &["cinder-common", "cinder-rpc", "cinder-db", "cinder-service"],
    ),
    (
        "cinder-volume",
        &[
            "cinder-common",
            "cinder-rpc",
            "cinder-db",
            "cinder-service",
            "cinder-drivers",
            "cinder-rbd-driver",
            "cinder-glance",
        ],
    ),
    (
        "cinder-backup",
        &[
            "cinder-common",
            "cinder-rpc",
            "cinder-db",
            "cinder-service",
            "cinder-drivers",
            "cinder-rbd-driver",
        ],
    ),
    (
        "cinder-manage",
        &["cinder-common", "cinder-db", "cinder-migrations"],
    ),
];

#[test]
fn crates_depend_only_along_the_allowed_edges() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert_eq!(
        allowed.len(),
        ALLOWED.len(),
        "a crate has two rows in the table"
    );
    let mut bad = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap();
        if name == "cinder-tests" {
            continue; // tests may use everything
        }
        let Some(ok) = allowed.get(name) else {
            bad.push(format!("{name} is not in the allowed-edges table"));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if d["kind"].as_str() == Some("dev") {
                continue;
            }
            if names.contains(&dep) && !ok.contains(&dep) {
                bad.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(bad.is_empty(), "forbidden dependency edges: {bad:#?}");

    // Neither the scheduler nor the API links librbd, however indirectly.
    let deps: BTreeMap<&str, Vec<&str>> = packages
        .iter()
        .map(|p| {
            let ds = p["dependencies"].as_array().unwrap();
            let ds = ds
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap())
                .filter(|d| names.contains(d))
                .collect();
            (p["name"].as_str().unwrap(), ds)
        })
        .collect();
    for top in ["cinder-api", "cinder-scheduler"] {
        let mut seen = vec![top];
        let mut i = 0;
        while i < seen.len() {
            for d in deps.get(seen[i]).into_iter().flatten() {
                if !seen.contains(d) {
                    seen.push(d);
                }
            }
            i += 1;
        }
        for librbd in ["cinder-rbd-driver", "rbd-sys", "cinder-drivers"] {
            assert!(!seen.contains(&librbd), "{top} reaches {librbd}: {seen:?}");
        }
    }
}
