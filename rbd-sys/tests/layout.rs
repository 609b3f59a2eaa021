//! The `repr(C)` structs in `rbd-sys` must match `librbd.h` as the C compiler sees it.
//! The test compiles a small C program against the installed header, runs it, and
//! compares every size, alignment and field offset with Rust's.

use std::collections::HashMap;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use rbd_sys::*;

const STRUCTS: &[(&str, &[&str])] = &[
    (
        "rbd_image_info_t",
        &[
            "size",
            "obj_size",
            "num_objs",
            "order",
            "block_name_prefix",
            "parent_pool",
            "parent_name",
        ],
    ),
    ("rbd_image_spec_t", &["id", "name"]),
    (
        "rbd_linked_image_spec_t",
        &[
            "pool_id",
            "pool_name",
            "pool_namespace",
            "image_id",
            "image_name",
            "trash",
        ],
    ),
    ("rbd_snap_spec_t", &["id", "namespace_type", "name"]),
    ("rbd_snap_info_t", &["id", "size", "name"]),
    (
        "rbd_trash_image_info_t",
        &[
            "id",
            "name",
            "source",
            "deletion_time",
            "deferment_end_time",
        ],
    ),
    ("rbd_image_watcher_t", &["addr", "id", "cookie"]),
];

fn c_layout() -> HashMap<String, usize> {
    let dir = std::env::temp_dir().join(format!("rbd-sys-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <rbd/librbd.h>\nint main(void) {\n",
    );
    for (name, fields) in STRUCTS {
        src += &format!("printf(\"{name}.size %zu\\n\", sizeof({name}));\n");
        src += &format!("printf(\"{name}.align %zu\\n\", _Alignof({name}));\n");
        for f in *fields {
            src += &format!("printf(\"{name}.{f} %zu\\n\", offsetof({name}, {f}));\n");
        }
    }
    src += "printf(\"enum.size %zu\\n\", sizeof(rbd_snap_namespace_type_t));\nreturn 0;\n}\n";
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("the layout test needs a C compiler ({cc}): {e}"));
    assert!(
        out.status.success(),
        "compiling against librbd.h failed (is librbd-dev installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

macro_rules! rust_layout {
    ($map:ident, $t:ident, [$($f:ident),*]) => {{
        $map.insert(format!("{}.size", stringify!($t)), size_of::<$t>());
        $map.insert(format!("{}.align", stringify!($t)), align_of::<$t>());
        $( $map.insert(format!("{}.{}", stringify!($t), stringify!($f)), offset_of!($t, $f)); )*
    }};
}

#[test]
fn repr_c_structs_match_librbd_header() {
    let c = c_layout();
    let mut r = HashMap::new();
    rust_layout!(
        r,
        rbd_image_info_t,
        [
            size,
            obj_size,
            num_objs,
            order,
            block_name_prefix,
            parent_pool,
            parent_name
        ]
    );
    rust_layout!(r, rbd_image_spec_t, [id, name]);
    rust_layout!(
        r,
        rbd_linked_image_spec_t,
        [
            pool_id,
            pool_name,
            pool_namespace,
            image_id,
            image_name,
            trash
        ]
    );
    rust_layout!(r, rbd_snap_spec_t, [id, namespace_type, name]);
    rust_layout!(r, rbd_snap_info_t, [id, size, name]);
    rust_layout!(
        r,
        rbd_trash_image_info_t,
        [id, name, source, deletion_time, deferment_end_time]
    );
    rust_layout!(r, rbd_image_watcher_t, [addr, id, cookie]);
    r.insert("enum.size".into(), size_of::<rbd_snap_namespace_type_t>());

    let mut keys: Vec<_> = c.keys().collect();
    keys.sort();
    let mismatches: Vec<String> = keys
        .iter()
        .filter(|k| r.get(k.as_str()) != c.get(k.as_str()))
        .map(|k| format!("{k}: C {} vs Rust {:?}", c[k.as_str()], r.get(k.as_str())))
        .collect();
    assert_eq!(c.len(), r.len(), "every Rust entry is checked against C");
    assert!(mismatches.is_empty(), "layout mismatches: {mismatches:#?}");
}

#[test]
fn linked_librbd_is_pacific_or_newer() {
    let (mut major, mut minor, mut extra) = (0, 0, 0);
    // SAFETY: rbd_version only writes three ints through valid pointers.
    unsafe { rbd_version(&mut major, &mut minor, &mut extra) };
    assert!(
        (major, minor) >= (1, 16),
        "librbd {major}.{minor}.{extra} is older than Pacific (1.16)"
    );
}
