//! Reading a TOML document into a typed configuration, turning every failure (syntax, schema,
//! validation) into a [`ConfigError`] that points at the line and column at fault.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, Position};

/// A validation failure: what was wrong, and the keys to point at, best first.
///
/// Each key path is tried in turn; the first one present in the document is reported. When none
/// is present (the offending values are defaults), the deepest table that is present is used.
#[derive(Debug)]
pub(crate) struct Problem {
    paths: Vec<Vec<String>>,
    message: String,
}

impl Problem {
    /// A problem at one of `paths` (each a list of keys from the root), described by `message`.
    pub(crate) fn at(paths: &[&[&str]], message: impl Into<String>) -> Self {
        Problem {
            paths: paths.iter().map(|path| path.iter().map(|key| (*key).to_owned()).collect()).collect(),
            message: message.into(),
        }
    }
}

/// A configuration section that checks its own cross-field rules after deserialization.
pub(crate) trait Validate {
    /// Ok when every rule holds; otherwise the first rule broken.
    fn validate(&self) -> Result<(), Problem>;
}

/// Reads the file at `path` and parses it with [`parse`].
pub(crate) fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            Err(invalid(
                path,
                Position::of_offset(valid, valid.len()),
                "invalid UTF-8; expected a UTF-8 encoded TOML file".to_owned(),
            ))
        }
    }
}

/// Parses `text` (which came from `origin`, used in messages) into `T` and validates it.
pub(crate) fn parse<T: DeserializeOwned + Validate>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    let document = DeTable::parse(text).map_err(|e| from_toml(text, origin, &e))?;
    let value =
        T::deserialize(toml::de::Deserializer::from(document.clone())).map_err(|e| from_toml(text, origin, &e))?;
    value.validate().map_err(|problem| {
        let offset = locate(&document, &problem.paths).map_or(0, |span| span.start);
        invalid(origin, Position::of_offset(text, offset), problem.message)
    })?;
    Ok(value)
}

fn invalid(origin: &Path, at: Position, message: String) -> ConfigError {
    ConfigError::Invalid { origin: origin.to_owned(), at, message }
}

/// A syntax or schema error from the toml crate, rendered on one line in our house style.
fn from_toml(text: &str, origin: &Path, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start);
    invalid(origin, Position::of_offset(text, offset), one_line(error.message()))
}

/// Collapses whitespace runs (including newlines) to single spaces and writes the first
/// ", expected" as "; expected", so every message reads "what was wrong; expected …".
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.replacen(", expected ", "; expected ", 1)
}

/// The span of the key to blame for a problem: the first path present in full, else the deepest
/// partial match of any path.
fn locate(document: &Spanned<DeTable<'_>>, paths: &[Vec<String>]) -> Option<Range<usize>> {
    let mut best: Option<(usize, Range<usize>)> = None;
    for path in paths {
        let (depth, span) = walk(document.get_ref(), path);
        if depth == path.len() && depth > 0 {
            return span;
        }
        if let Some(span) = span
            && best.as_ref().is_none_or(|(d, _)| depth > *d)
        {
            best = Some((depth, span));
        }
    }
    best.map(|(_, span)| span)
}

/// Follows `path` through nested tables; returns how many keys matched and the span of the last
/// matched key.
fn walk(mut table: &DeTable<'_>, path: &[String]) -> (usize, Option<Range<usize>>) {
    let mut span = None;
    for (depth, wanted) in path.iter().enumerate() {
        let Some((key, value)) = table.iter().find(|(key, _)| key.get_ref() == wanted) else {
            return (depth, span);
        };
        span = Some(key.span());
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => return (depth + 1, span),
        }
    }
    (path.len(), span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_lines_and_separates_expected_with_semicolon() {
        assert_eq!(one_line("invalid string\n  expected `\"`, `'`"), "invalid string expected `\"`, `'`");
        assert_eq!(one_line("unknown field `x`, expected `a` or `b`"), "unknown field `x`; expected `a` or `b`");
    }

    #[test]
    fn locate_prefers_a_full_match_then_the_deepest_partial_one() {
        let text = "[a]\nx = 1\n[b]\ny = 2\n";
        let doc = DeTable::parse(text).expect("valid toml");
        let full = locate(&doc, &[vec!["a".into(), "z".into()], vec!["b".into(), "y".into()]]);
        assert_eq!(full.map(|s| s.start), text.find("y ="));
        let partial = locate(&doc, &[vec!["a".into(), "z".into()]]);
        assert_eq!(partial.map(|s| s.start), text.find('a'));
        assert_eq!(locate(&doc, &[vec!["c".into()]]), None);
    }
}
