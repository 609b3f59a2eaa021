//! `cinder-backup [--config PATH]`: runs until SIGTERM/SIGINT.

fn main() -> anyhow::Result<()> {
    cinder_common::service::main(
        "cinder-backup",
        "",
        |settings: cinder_backup::Settings, rest, shutdown| async move {
            cinder_common::service::no_extra_args("cinder-backup", &rest)?;
            cinder_backup::run(settings, shutdown).await
        },
    )
}
