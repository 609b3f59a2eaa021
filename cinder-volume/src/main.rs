//! `cinder-volume [--config PATH] [--backend NAME]...`: serves the enabled backends (or
//! only the named ones, one process per backend) until SIGTERM/SIGINT.

fn main() -> anyhow::Result<()> {
    cinder_common::service::main(
        "cinder-volume",
        "[--backend NAME]...",
        |settings: cinder_volume::Settings, rest, shutdown| async move {
            let backends = cinder_volume::parse_backends(&rest)?;
            cinder_volume::run(settings, backends, shutdown).await
        },
    )
}
