//! Where each byte of a TOML string's value was written in its file, so a finding's span in a
//! post's text can be shown on the file's own line and column (`--format github`).
//!
//! The four kinds of TOML string are decoded again here, keeping for every byte of the value
//! the position of the character or escape it came from: basic `"…"` with escapes, multi-line
//! `"""…"""` with its leading newline trimmed and line-ending backslashes, literal `'…'` and
//! `'''…'''`. The result is only kept when it decodes to exactly the value the TOML parser read.

use std::ops::Range;

/// A 1-based line and column (in characters) in a file.
pub type Position = (usize, usize);

/// For each byte of a string's value, where in the file it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMap {
    /// The position of the string literal itself (its opening quote).
    pub value: Position,
    /// Per byte of the value: the position of the first character of what produced it.
    starts: Vec<(u32, u32)>,
    /// Per byte of the value: the position just after what produced it.
    ends: Vec<(u32, u32)>,
}

impl TextMap {
    /// Maps the string literal at `span` in `file`, if it decodes to `value`.
    pub fn new(file: &str, span: Range<usize>, value: &str) -> Option<TextMap> {
        let raw = file.get(span.clone())?;
        let pieces = decode(raw)?;
        let mut decoded = String::with_capacity(value.len());
        let mut offsets: Vec<(usize, usize)> = Vec::with_capacity(value.len());
        for (c, range) in pieces {
            decoded.push(c);
            for _ in 0..c.len_utf8() {
                offsets.push((span.start + range.start, span.start + range.end));
            }
        }
        if decoded != value {
            return None;
        }
        let lines = Lines::new(file);
        let at = |offset: usize| {
            let (l, c) = lines.position(file, offset);
            (
                u32::try_from(l).unwrap_or(u32::MAX),
                u32::try_from(c).unwrap_or(u32::MAX),
            )
        };
        Some(TextMap {
            value: lines.position(file, span.start),
            starts: offsets.iter().map(|(s, _)| at(*s)).collect(),
            ends: offsets.iter().map(|(_, e)| at(*e)).collect(),
        })
    }

    /// Where the bytes `span` of the value were written: the first one's line and column, and
    /// the line and column just past the last one.
    pub fn locate(&self, span: Range<usize>) -> Option<(Position, Position)> {
        if span.start >= span.end || span.end > self.starts.len() {
            return None;
        }
        let (l, c) = self.starts[span.start];
        let (el, ec) = self.ends[span.end - 1];
        Some(((l as usize, c as usize), (el as usize, ec as usize)))
    }
}

/// Line starts of a file, to turn byte offsets into lines and columns quickly.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Lines { starts }
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }
}

/// The characters of a TOML string literal, each with the byte range (in `raw`) that wrote it.
fn decode(raw: &str) -> Option<Vec<(char, Range<usize>)>> {
    let (delim, basic) = if raw.starts_with("\"\"\"") {
        ("\"\"\"", true)
    } else if raw.starts_with("'''") {
        ("'''", false)
    } else if raw.starts_with('"') {
        ("\"", true)
    } else if raw.starts_with('\'') {
        ("'", false)
    } else {
        return None;
    };
    if raw.len() < 2 * delim.len() || !raw.ends_with(delim) {
        return None;
    }
    let multi = delim.len() == 3;
    let mut i = delim.len();
    let end = raw.len() - delim.len();
    if multi {
        // A newline right after the opening delimiter is trimmed.
        if raw[i..end].starts_with("\r\n") {
            i += 2;
        } else if raw[i..end].starts_with('\n') {
            i += 1;
        }
    }
    let mut out = Vec::new();
    while i < end {
        let c = raw[i..].chars().next()?;
        if !basic || c != '\\' {
            out.push((c, i..i + c.len_utf8()));
            i += c.len_utf8();
            continue;
        }
        let next = raw[i + 1..].chars().next()?;
        let simple = match next {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push((decoded, i..i + 2));
            i += 2;
            continue;
        }
        let hex = match next {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        if hex > 0 {
            let digits = raw.get(i + 2..i + 2 + hex)?;
            let decoded = char::from_u32(u32::from_str_radix(digits, 16).ok()?)?;
            out.push((decoded, i..i + 2 + hex));
            i += 2 + hex;
            continue;
        }
        if !multi {
            return None;
        }
        // A line-ending backslash: it, the rest of the line's blanks, the newline and every
        // blank or newline after it are dropped.
        let rest = &raw[i + 1..end];
        let blanks = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let after = &rest[blanks..];
        if !(after.starts_with('\n') || after.starts_with("\r\n")) {
            return None;
        }
        let skipped = after.len() - after.trim_start_matches([' ', '\t', '\r', '\n']).len();
        i += 1 + blanks + skipped;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value as the TOML parser reads it, and its literal's span in the file.
    fn text_of(file: &str) -> (String, Range<usize>) {
        let table = toml::de::DeTable::parse(file).expect("valid TOML");
        let (_, value) = table
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == "text")
            .expect("a text key");
        match value.get_ref() {
            toml::de::DeValue::String(s) => (s.to_string(), value.span()),
            _ => panic!("text is a string"),
        }
    }

    fn where_is(file: &str, needle: &str) -> (Position, Position) {
        let (value, span) = text_of(file);
        let map = TextMap::new(file, span, &value).expect("the literal maps");
        let start = value.find(needle).expect("needle in the value");
        map.locate(start..start + needle.len()).expect("in range")
    }

    #[test]
    fn basic_strings_count_escapes_as_written() {
        let file = "account = \"a\"\ntext = \"caf\\u00e9 \\\"big\\\" news\"\n";
        // `news` sits after `café "big" ` written as `caf\u00e9 \"big\" `.
        assert_eq!(where_is(file, "news"), ((2, 27), (2, 31)));
        assert_eq!(where_is(file, "é"), ((2, 12), (2, 18)));
    }

    #[test]
    fn multi_line_basic_strings_trim_the_first_newline_and_line_ending_backslashes() {
        let file = "text = \"\"\"\nfirst line\nsecond \\\n    joined here\n\"\"\"\n";
        let (value, _) = text_of(file);
        assert_eq!(value, "first line\nsecond joined here\n");
        assert_eq!(where_is(file, "first"), ((2, 1), (2, 6)));
        assert_eq!(where_is(file, "joined"), ((4, 5), (4, 11)));
    }

    #[test]
    fn literal_strings_have_no_escapes() {
        let file = "text = 'a \\n b'\n";
        assert_eq!(where_is(file, "b"), ((1, 14), (1, 15)));
        let file = "text = '''\r\nraw \\ line\r\nnext'''\r\n";
        assert_eq!(text_of(file).0, "raw \\ line\r\nnext");
        assert_eq!(where_is(file, "next"), ((3, 1), (3, 5)));
        assert_eq!(where_is(file, "line"), ((2, 7), (2, 11)));
    }

    #[test]
    fn columns_count_characters() {
        let file = "text = \"ééé bad\"\n";
        assert_eq!(where_is(file, "bad"), ((1, 13), (1, 16)));
    }

    #[test]
    fn a_literal_that_decodes_otherwise_is_not_mapped() {
        let file = "text = \"abc\"\n";
        assert_eq!(TextMap::new(file, 7..12, "abd"), None);
        assert_eq!(TextMap::new(file, 0..4, "text"), None);
    }

    /// The character of `file` at a 1-based line and column.
    fn char_at(file: &str, (line, column): Position) -> Option<char> {
        file.split('\n').nth(line - 1)?.chars().nth(column - 1)
    }

    proptest::proptest! {
        /// Whatever text a serialiser writes, in whichever kind of string, every letter of the
        /// value maps back onto that same letter in the file.
        #[test]
        fn every_letter_maps_onto_itself(
            text in "[a-zé\"'\\\\\n\t %]{1,40}",
            kind in 0..4usize,
        ) {
            let literal = match kind {
                0 => toml_edit::Value::from(text.as_str()).to_string(),
                1 if !text.contains('\'') && !text.contains('\n') => format!("'{text}'"),
                2 if !text.contains("\'\'\'") && !text.ends_with('\'') => format!("\'\'\'\n{text}\'\'\'"),
                _ => {
                    // A multi-line basic string with every quote and backslash escaped and a
                    // line-ending backslash in the middle.
                    let escape = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
                    let mid = text.char_indices().map(|(i, _)| i).nth(text.chars().count() / 2).unwrap_or(0);
                    let (a, b) = text.split_at(mid);
                    let a = escape(a);
                    // The blanks after a line-ending backslash are dropped: start `b` with a
                    // letter or an escape.
                    let b = match b.chars().next() {
                        Some(c @ (' ' | '\t' | '\n')) => format!("\\u{:04x}{}", c as u32, escape(&b[1..])),
                        _ => escape(b),
                    };
                    format!("\"\"\"\n{a}\\\n   {b}\"\"\"")
                }
            };
            let file = format!("account = \"a\"\ntext = {}\n", literal.trim());
            let Ok(table) = toml::de::DeTable::parse(&file) else { panic!("unparsed {file:?}") };
            let (_, value) = table.get_ref().iter().find(|(k, _)| k.get_ref().as_ref() == "text").unwrap();
            let toml::de::DeValue::String(parsed) = value.get_ref() else { panic!() };
            let map = TextMap::new(&file, value.span(), parsed).expect("every literal maps");
            for (i, c) in parsed.char_indices() {
                if c.is_alphabetic() {
                    let (start, _) = map.locate(i..i + c.len_utf8()).unwrap();
                    proptest::prop_assert_eq!(char_at(&file, start), Some(c), "{:?} in {:?}", c, file);
                }
            }
        }
    }
}
