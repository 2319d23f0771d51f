//! The one error type of configuration loading, rendered as `FILE:LINE:COL: message`.

use std::fmt;
use std::path::PathBuf;

/// A configuration file could not be read or is not valid.
///
/// Renders as one line an editor can jump to: `FILE:LINE:COL: what was wrong; expected …`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read the configuration file: {source}; check the path and its permissions", .path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but its content is wrong at a known place.
    #[error("{}:{at}: {message}", .origin.display())]
    Invalid {
        /// The file (or other origin) the text came from.
        origin: PathBuf,
        /// Where in the text the problem is.
        at: Position,
        /// What was wrong and what was expected, on one line.
        message: String,
    },
}

impl ConfigError {
    /// Where in the file the problem is, when it is about the file's content.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { at, .. } => Some(*at),
        }
    }
}

/// A position in a text: 1-based line and 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, starting at 1.
    pub line: usize,
    /// The column, starting at 1, counted in Unicode characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`; an offset past the end (or inside a character)
    /// is clamped to the nearest character boundary before it.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Position::of_offset(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of_offset(text, 6), Position { line: 2, column: 1 });
        // 'é' is two bytes but one column: '=' is byte 10, column 4.
        assert_eq!(Position::of_offset(text, 10), Position { line: 2, column: 4 });
    }

    #[test]
    fn position_past_the_end_or_inside_a_character_is_clamped() {
        let text = "é";
        assert_eq!(Position::of_offset(text, 1), Position { line: 1, column: 1 });
        assert_eq!(Position::of_offset(text, 99), Position { line: 1, column: 2 });
    }
}
