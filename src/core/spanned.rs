//! Reading TOML into typed values while keeping every key's position, so a file with five
//! problems gets five positioned diagnostics in one run instead of the first serde error.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::core::diagnostic::{Diagnostic, Level, Source, did_you_mean};

/// A TOML value with the byte span it came from.
pub type Value<'i> = Spanned<DeValue<'i>>;

/// Collects diagnostics while typed values are pulled out of one parsed file.
pub struct Reader<'s> {
    pub source: &'s Source,
    pub diagnostics: Vec<Diagnostic>,
}

/// A typed value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<'s> Reader<'s> {
    pub fn new(source: &'s Source) -> Self {
        Reader {
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Parses the document, reporting every syntax error the parser could recover from.
    pub fn parse(&mut self) -> Option<Spanned<DeTable<'s>>> {
        let (table, errors) = DeTable::parse_recoverable(&self.source.text);
        if errors.is_empty() {
            return Some(table);
        }
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim().trim_end_matches('.').to_owned();
            self.error(span, format!("invalid TOML: {message}"));
        }
        None
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Level::Error, span, message)
    }

    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Level::Warning, span, message)
    }

    fn push(
        &mut self,
        level: Level,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::at(level, self.source, span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Reports every key of `table` that is not in `allowed`, suggesting the closest one.
    pub fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], context: &str) {
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = match did_you_mean(name, allowed.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("{context} takes: {}", list(allowed)),
            };
            self.error(key.span(), format!("unknown key `{name}` in {context}"))
                .hint = Some(hint);
        }
    }

    /// Whether `table` holds a key that looks like a misspelling of `key` (`platfrom` for
    /// `platform`): its "unknown key, did you mean" error already says what is missing.
    pub fn misspelt(table: &DeTable<'_>, key: &str) -> bool {
        table.keys().any(|k| {
            let name = k.get_ref().as_ref();
            name != key && did_you_mean(name, [key]).is_some()
        })
    }

    /// The value under `key`, if present.
    pub fn get<'t, 'i>(
        table: &'t DeTable<'i>,
        key: &str,
    ) -> Option<(&'t Spanned<toml::de::DeString<'i>>, &'t Value<'i>)> {
        table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
    }

    fn type_error(&mut self, key: &str, value: &Value<'_>, expected: &str) {
        let found = type_name(value.get_ref());
        self.error(
            value.span(),
            format!("`{key}` must be {expected}, found {found}"),
        );
    }

    pub fn string(&mut self, table: &DeTable<'_>, key: &str) -> Option<At<String>> {
        let (_, value) = Self::get(table, key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: value.span(),
            }),
            _ => {
                self.type_error(key, value, "a string");
                None
            }
        }
    }

    pub fn integer(&mut self, table: &DeTable<'_>, key: &str) -> Option<At<i64>> {
        let (_, value) = Self::get(table, key)?;
        match value.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(At {
                        value: n,
                        span: value.span(),
                    }),
                    Err(_) => {
                        self.error(value.span(), format!("`{key}` is out of range"));
                        None
                    }
                }
            }
            _ => {
                self.type_error(key, value, "an integer");
                None
            }
        }
    }

    /// A non-negative count that fits in `u32`.
    pub fn count(&mut self, table: &DeTable<'_>, key: &str) -> Option<At<u32>> {
        let at = self.integer(table, key)?;
        match u32::try_from(at.value) {
            Ok(n) => Some(At {
                value: n,
                span: at.span,
            }),
            Err(_) => {
                self.error(
                    at.span.clone(),
                    format!("`{key}` must be a whole number from 0 up"),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, table: &DeTable<'_>, key: &str) -> Option<At<bool>> {
        let (_, value) = Self::get(table, key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(At {
                value: *b,
                span: value.span(),
            }),
            _ => {
                self.type_error(key, value, "true or false");
                None
            }
        }
    }

    /// An array of strings; elements of the wrong type are reported one by one.
    pub fn strings(&mut self, table: &DeTable<'_>, key: &str) -> Option<Vec<At<String>>> {
        let (_, value) = Self::get(table, key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(key, value, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => out.push(At {
                    value: s.to_string(),
                    span: item.span(),
                }),
                other => {
                    let found = type_name(other);
                    self.error(
                        item.span(),
                        format!("`{key}` must hold only strings, found {found}"),
                    );
                }
            }
        }
        Some(out)
    }

    pub fn table<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        key: &str,
    ) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let (k, value) = Self::get(table, key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, key_span(k, value))),
            _ => {
                self.type_error(key, value, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[key]]`), each with the span of its header.
    pub fn tables<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        key: &str,
    ) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
        let Some((_, value)) = Self::get(table, key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(key, value, "an array of tables (`[[...]]`)");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                other => {
                    let found = type_name(other);
                    self.error(
                        item.span(),
                        format!("`{key}` must hold tables, found {found}"),
                    );
                }
            }
        }
        out
    }
}

/// The span to point at for a table: its key in the header, which is where people look.
fn key_span(key: &Spanned<toml::de::DeString<'_>>, value: &Value<'_>) -> Range<usize> {
    if key.span().is_empty() {
        value.span()
    } else {
        key.span()
    }
}

pub fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `a`, `b` and `c` as a readable list of identifiers.
pub fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
