//! Typed configuration for the registrar and the softphone: the schemas, their defaults, and
//! loading with errors that name the file, line and column of what was wrong.
//!
//! Every option has a default, so an empty file is a valid configuration. Unknown keys are
//! errors, so a typo never passes silently. [`DEFAULT_REGISTRAR_TOML`] is the example file that
//! documents every option and holds exactly the defaults; [`DEFAULT_SOFTPHONE_TOML`] is the
//! softphone's example, with two accounts.

mod document;
mod error;
mod registrar;
mod softphone;

pub use error::{ConfigError, Position};
pub use registrar::{AuthConfig, DigestAlgorithm, LimitsConfig, RegistrarConfig, RegistrationConfig, TimerConfig};
pub use softphone::{AccountConfig, SOFTPHONE_CODECS, SoftphoneConfig};

/// The example registrar configuration: every option, commented, set to its default.
pub const DEFAULT_REGISTRAR_TOML: &str = include_str!("../examples/registrar.toml");

/// The example softphone configuration: every option, commented, with two accounts.
pub const DEFAULT_SOFTPHONE_TOML: &str = include_str!("../examples/softphone.toml");
