//! Pieces every binary shares: the configuration loader and its common sections, the
//! command line (`--config PATH`), telemetry initialisation and the shutdown signal.
//!
//! Invariant: no I/O beyond reading the configuration file and installing signal
//! handlers; no dependency on any other crate of the workspace.
#![warn(missing_docs)]

pub mod capabilities;
pub mod cli;
pub mod config;
pub mod messages;
pub mod ops;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod status;
pub mod strutils;
pub mod telemetry;
pub mod temp;
