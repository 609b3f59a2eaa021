//! `cinder-api [--config PATH]`: runs until SIGTERM/SIGINT.

fn main() -> anyhow::Result<()> {
    cinder_common::service::main(
        "cinder-api",
        "",
        |settings: cinder_api::Settings, rest, shutdown| async move {
            cinder_common::service::no_extra_args("cinder-api", &rest)?;
            cinder_api::run(settings, shutdown).await
        },
    )
}
