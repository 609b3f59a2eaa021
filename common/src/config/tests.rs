use super::*;
use crate::settings::{DatabaseSettings, LoggingSettings, ServiceSettings};

#[derive(Debug, serde::Deserialize)]
struct Probe {
    #[serde(default = "ServiceSettings::defaults")]
    service: ServiceSettings,
    #[serde(default = "DatabaseSettings::defaults")]
    database: DatabaseSettings,
    #[serde(default = "LoggingSettings::defaults")]
    logging: LoggingSettings,
}

fn write(text: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with(text)
}

mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl TempPath {
        pub fn with(text: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "cinder-cfg-{}-{}.toml",
                std::process::id(),
                rand()
            ));
            std::fs::write(&p, text).unwrap();
            TempPath(p)
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    fn rand() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }
}

#[test]
fn defaults_apply_when_nothing_is_configured() {
    let p: Probe = load_with_env(None, []).unwrap();
    assert_eq!(p.service.report_interval, 10);
    assert_eq!(p.service.service_down_time, 60);
    assert_eq!(p.logging.level, "info");
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let f = write("[service]\nhost = \"node-1\"\nreport_interval = 5\n");
    let env = [(
        "CINDER__SERVICE__REPORT_INTERVAL".to_string(),
        "2".to_string(),
    )];
    let p: Probe = load_with_env(Some(&f.0), env).unwrap();
    assert_eq!(p.service.host, "node-1");
    assert_eq!(p.service.report_interval, 2);
}

#[test]
fn unknown_sections_and_keys_are_rejected() {
    let f = write("[servce]\nhost = \"x\"\n");
    let e = load_with_env::<Probe>(Some(&f.0), []).unwrap_err();
    assert!(
        format!("{e:#}").contains("unknown section [servce]"),
        "{e:#}"
    );
    let f = write("[service]\nhots = \"x\"\n");
    let e = load_with_env::<Probe>(Some(&f.0), []).unwrap_err();
    assert!(format!("{e:#}").contains("hots"), "{e:#}");
    let e = load_with_env::<Probe>(None, [("CINDER__NOPE__X".to_string(), "1".to_string())])
        .unwrap_err();
    assert!(format!("{e:#}").contains("CINDER__NOPE__X"), "{e:#}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let e = load_with_env::<Probe>(Some(Path::new("/nonexistent/cinder.toml")), []).unwrap_err();
    assert!(e.to_string().contains("does not exist"));
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let f = write("[database]\nconnection = \"postgres://u:hunter2@db/cinder\"\n");
    let p: Probe = load_with_env(Some(&f.0), []).unwrap();
    assert!(!format!("{p:?}").contains("hunter2"));
    assert_eq!(
        p.database.connection.expose(),
        "postgres://u:hunter2@db/cinder"
    );
}

#[test]
fn a_down_time_not_above_the_report_interval_becomes_two_and_a_half_intervals() {
    let f = write("[service]\nreport_interval = 10\nservice_down_time = 10\n");
    let p: Probe = load_with_env(Some(&f.0), []).unwrap();
    assert_eq!(p.service.down_time(), 25);
    let f = write("[service]\nreport_interval = 3\nservice_down_time = 1\n");
    let p: Probe = load_with_env(Some(&f.0), []).unwrap();
    assert_eq!(
        p.service.down_time(),
        7,
        "2.5 x 3, truncated as Cinder's int()"
    );
    let p: Probe = load_with_env(None, []).unwrap();
    assert_eq!(p.service.down_time(), 60, "a sane value stands");
}
