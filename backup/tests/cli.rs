//! The binary's command line. (Also what makes `cargo test --workspace` build the
//! `cinder-backup` binary that the whole-system kill test runs as a process.)

use std::process::Command;

fn cinder_backup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cinder-backup"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

#[test]
fn help_names_the_config_flag_and_exits_zero() {
    let out = cinder_backup(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--config"), "{text}");
}

#[test]
fn a_missing_configuration_file_is_a_clear_error() {
    let out = cinder_backup(&["--config", "/nonexistent/cinder.toml"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("/nonexistent/cinder.toml"), "{text}");
}
