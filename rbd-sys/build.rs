// Debian's librbd-dev ships no pkg-config file: link by name.
fn main() {
    println!("cargo:rustc-link-lib=rbd");
    println!("cargo:rustc-link-lib=rados");
    println!("cargo:rerun-if-changed=build.rs");
}
