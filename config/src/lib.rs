//! Typed configuration for the registrar (and, later, the softphone): the schema, its defaults,
//! and loading with errors that name the file, line and column of what was wrong.
//!
//! Every option has a default, so an empty file is a valid configuration. Unknown keys are
//! errors, so a typo never passes silently. [`DEFAULT_REGISTRAR_TOML`] is the example file that
//! documents every option and holds exactly the defaults.

mod document;
mod error;
mod registrar;

pub use error::{ConfigError, Position};
pub use registrar::{AuthConfig, DigestAlgorithm, LimitsConfig, RegistrarConfig, RegistrationConfig, TimerConfig};

/// The example registrar configuration: every option, commented, set to its default.
pub const DEFAULT_REGISTRAR_TOML: &str = include_str!("../examples/registrar.toml");
