//! The command line every binary shares: `--config PATH`, `--help`, `--version`; the
//! rest (subcommands, binary-specific flags) is handed back.

use std::path::PathBuf;

/// Parsed common arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `--config PATH` (TOML).
    pub config: Option<PathBuf>,
    /// Arguments this parser does not know, in order.
    pub rest: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with these arguments.
    Run(Args),
    /// Print this help text and exit 0.
    Help(String),
    /// Print the version and exit 0.
    Version(String),
}

/// Parses `args` (without the program name) for binary `bin`; `usage` lists the
/// binary's own arguments for `--help`.
pub fn parse(
    bin: &str,
    usage: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Command, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                return Ok(Command::Help(format!(
                    "usage: {bin} [--config PATH] {usage}\n\n  --config PATH  TOML configuration (default /etc/cinder-rs/cinder.toml if present);\n                 CINDER__<SECTION>__<KEY> environment variables override it\n"
                )))
            }
            "-V" | "--version" => return Ok(Command::Version(format!("{bin} {}", env!("CARGO_PKG_VERSION")))),
            "--config" => out.config = Some(it.next().ok_or("--config needs a path")?.into()),
            s if s.starts_with("--config=") => out.config = Some(s["--config=".len()..].into()),
            _ => out.rest.push(a),
        }
    }
    Ok(Command::Run(out))
}

/// Parses the process's arguments; prints help or version and exits when asked, and
/// exits 2 with a message on a usage error.
pub fn from_env(bin: &str, usage: &str) -> Args {
    match parse(bin, usage, std::env::args().skip(1)) {
        Ok(Command::Run(a)) => a,
        Ok(Command::Help(h)) => {
            print!("{h}");
            std::process::exit(0)
        }
        Ok(Command::Version(v)) => {
            println!("{v}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{bin}: {e} (see --help)");
            std::process::exit(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_path_is_taken_and_the_rest_kept() {
        let c = parse("x", "", args(&["--config", "/tmp/c.toml", "db", "sync"])).unwrap();
        assert_eq!(
            c,
            Command::Run(Args {
                config: Some("/tmp/c.toml".into()),
                rest: args(&["db", "sync"])
            })
        );
        let c = parse("x", "", args(&["--config=/a.toml"])).unwrap();
        assert!(
            matches!(c, Command::Run(Args { config: Some(p), .. }) if p == std::path::Path::new("/a.toml"))
        );
    }

    #[test]
    fn a_config_flag_without_a_path_is_an_error() {
        assert!(parse("x", "", args(&["--config"])).is_err());
    }
}
