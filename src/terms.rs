//! Banned-term matching: posts and policy terms go through one normalisation, so evasions
//! (look-alike letters, invisible characters, `f.u.c.k`) meet the term they imitate, while
//! every finding still points at the bytes the author actually wrote.
//!
//! # Normalisation
//!
//! Each character of the original text is turned, on its own, into zero or more normalised
//! characters (this is context-free, so every normalised byte knows which original character
//! produced it):
//!
//! 1. NFKC (computed as the compatibility decomposition of the character; canonical
//!    composition is skipped because step 3 undoes it anyway),
//! 2. case folding, approximated as `to_lowercase(to_uppercase(c))` so that `ß`/`SS`/`ss`
//!    and `ς`/`σ` meet (no Turkish or other locale-specific rules),
//! 3. canonical decomposition, dropping non-spacing marks (general category `Mn`): this
//!    removes diacritics,
//! 4. dropping invisible (default-ignorable) characters such as zero-width spaces and joiners,
//!    soft hyphens, bidi controls and variation selectors,
//! 5. mapping look-alikes: a character whose script is not Latin, Common or Inherited and
//!    whose UTS #39 confusable skeleton is a single ASCII letter or digit becomes that (lower
//!    case) ASCII character. Latin text is never rewritten, so `burn` never becomes `bum`.
//!
//! The resulting characters are split into words of alphanumeric characters; every run of
//! anything else (spaces, punctuation, symbols, emoji) becomes one ASCII space, and leading
//! and trailing runs disappear. Finally letter-spelled words are joined: a run of two or
//! more single-letter words separated each time by the same separator made only of
//! `.` `-` `_` `*` and whitespace becomes one word (`f.u.c.k`, `F U C K`). Where two such
//! runs share a letter (`I f.u.c.k`), the longer run keeps it (the left one on a tie), so
//! that reads `i fuck`. Known limitation: a space-spelled run next to an unrelated
//! single-letter word merges with it (`I f u c k` becomes `ifuck`).
//!
//! ASCII bytes skip all of this: they are lower-cased and classified directly, which keeps
//! mostly-ASCII posts on a fast path.
//!
//! # Matching
//!
//! All deny, warn and allow terms live in one Aho-Corasick automaton searched with
//! overlapping semantics, so a whole-word match is never hidden behind a longer match that
//! is not on word boundaries. A hit counts only when it starts at the start of the text or
//! after a space and ends at the end or before a space. Deny and warn hits (and regex hits)
//! lying inside an allow hit are dropped.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder};
use unicode_normalization::char::{decompose_canonical, decompose_compatible, is_combining_mark};
use unicode_script::{Script, UnicodeScript};

/// How serious a hit is: deny blocks the post, warn is only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Deny,
    Warn,
}

/// One finding, pointing at the original text so the author sees exactly what tripped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The term as written in the policy (or the regex pattern), not its normalised form,
    /// so the report matches what the policy author can grep for.
    pub term: String,
    /// Deny for the deny and regex lists, Warn for the warn list.
    pub level: Level,
    /// True when the hit came from the regex list.
    pub regex: bool,
    /// Byte span in the original text; always on char boundaries.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Deny,
    Warn,
    Allow,
}

#[derive(Debug, Clone)]
struct Pattern {
    term: String,
    list: List,
}

/// A compiled policy term set; build it once per policy and reuse it for every post.
pub struct Matcher {
    /// `None` when no term survived normalisation (an empty automaton is not useful).
    ac: Option<AhoCorasick>,
    /// Indexed by Aho-Corasick pattern id.
    patterns: Vec<Pattern>,
    regexes: Vec<(String, Regex)>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("patterns", &self.patterns.len())
            .field("regexes", &self.regexes.len())
            .finish()
    }
}

impl Matcher {
    /// Builds the matcher. Terms that normalise to nothing (e.g. `!!!`) are skipped rather
    /// than rejected, because policy validation reports them with better context.
    /// Errors name the index of the failing regex pattern so validation can point at it.
    pub fn new(
        deny: &[String],
        warn: &[String],
        allow: &[String],
        regex: &[String],
    ) -> Result<Matcher, (usize, regex::Error)> {
        let regexes = regex
            .iter()
            .enumerate()
            .map(|(i, p)| compile_regex(p).map(|r| (p.clone(), r)).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;

        let mut patterns = Vec::with_capacity(deny.len() + warn.len() + allow.len());
        let mut normalised = Vec::with_capacity(patterns.capacity());
        let lists = [(deny, List::Deny), (warn, List::Warn), (allow, List::Allow)];
        for (terms, list) in lists {
            for term in terms {
                let n = normalize_term(term);
                if n.is_empty() {
                    continue;
                }
                normalised.push(n);
                patterns.push(Pattern {
                    term: term.clone(),
                    list,
                });
            }
        }

        let ac = if normalised.is_empty() {
            None
        } else {
            // A contiguous NFA builds in a few milliseconds even for 10,000 terms and stays
            // small; a full DFA would be faster per byte but costs tens of megabytes and
            // far longer to build, which a CLI that runs once per post cannot amortise.
            let kind = if normalised.len() <= 100 {
                AhoCorasickKind::DFA
            } else {
                AhoCorasickKind::ContiguousNFA
            };
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .kind(Some(kind))
                .build(&normalised)
                .expect("normalised terms are short enough for Aho-Corasick");
            Some(ac)
        };

        Ok(Matcher {
            ac,
            patterns,
            regexes,
        })
    }

    /// Every hit, sorted by (start, end), deduplicated (same term + same span once, keeping
    /// the stricter level) so a term listed twice does not inflate the report.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let norm = normalize(text);
        let bytes = norm.text.as_bytes();
        let is_word_span = |s: usize, e: usize| {
            (s == 0 || bytes[s - 1] == b' ') && (e == bytes.len() || bytes[e] == b' ')
        };

        // (index into patterns or regexes, is_regex, start, end) in normalised bytes.
        let mut found: Vec<(usize, bool, usize, usize)> = Vec::new();
        let mut allowed: Vec<(usize, usize)> = Vec::new();
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(&norm.text) {
                let (s, e) = (m.start(), m.end());
                if !is_word_span(s, e) {
                    continue;
                }
                let id = m.pattern().as_usize();
                match self.patterns[id].list {
                    List::Allow => allowed.push((s, e)),
                    List::Deny | List::Warn => found.push((id, false, s, e)),
                }
            }
        }
        for (i, (_, re)) in self.regexes.iter().enumerate() {
            for m in re.find_iter(&norm.text) {
                if m.start() < m.end() {
                    found.push((i, true, m.start(), m.end()));
                }
            }
        }

        let mut hits: Vec<Hit> = found
            .into_iter()
            .filter(|&(_, _, s, e)| !allowed.iter().any(|&(a, b)| a <= s && e <= b))
            .map(|(i, is_regex, s, e)| {
                let (start, end) = norm.original_span(s, e).expect("non-empty match");
                let (term, level) = if is_regex {
                    (self.regexes[i].0.clone(), Level::Deny)
                } else {
                    let p = &self.patterns[i];
                    let level = if p.list == List::Warn {
                        Level::Warn
                    } else {
                        Level::Deny
                    };
                    (p.term.clone(), level)
                };
                Hit {
                    term,
                    level,
                    regex: is_regex,
                    start,
                    end,
                }
            })
            .collect();
        hits.sort_by(|a, b| {
            (a.start, a.end, &a.term, a.level, a.regex)
                .cmp(&(b.start, b.end, &b.term, b.level, b.regex))
        });
        hits.dedup_by(|later, kept| {
            later.start == kept.start && later.end == kept.end && later.term == kept.term
        });
        hits
    }

    /// Number of (deny+warn+allow) patterns in the automaton, for diagnostics; terms that
    /// normalised to nothing are not counted.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when no term survived normalisation (regexes are not counted).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Compiles a policy regex the way it is matched: case-insensitive, Unicode-aware, against
/// the normalised text (lower-case words separated by single spaces). Unlike terms, regex
/// hits are not restricted to whole words: the author wrote the boundaries they wanted
/// (use `\b`). Public so policy validation can report a bad pattern with its position.
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .unicode(true)
        .build()
}

/// The normalised form of a policy term, exactly as it is searched for. Public so policy
/// validation can warn about terms that normalise to nothing and would never match.
pub fn normalize_term(term: &str) -> String {
    normalize(term).text
}

/// Normalised text plus the way back to the original, which findings need because authors
/// must be shown what they wrote, not what the matcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Lower-case alphanumeric words separated by single ASCII spaces.
    pub text: String,
    /// For every byte of `text`: start of the original character that produced it (for a
    /// space: start of the separator run it stands for).
    starts: Vec<usize>,
    /// For every byte of `text`: end of the original character (or separator run).
    ends: Vec<usize>,
}

impl Normalized {
    /// Maps a non-empty byte range of `text` to the original text: from the start of the
    /// character that produced its first byte to the end of the one that produced its last.
    /// `None` for an empty or out-of-range span, which has no meaningful original.
    pub fn original_span(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if start >= end || end > self.text.len() {
            return None;
        }
        Some((self.starts[start], self.ends[end - 1]))
    }
}

/// The normalisation both sides go through (public for tests and `gate check -v`); see the
/// module documentation for the steps.
pub fn normalize(text: &str) -> Normalized {
    let mut b = Builder::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte < 0x80 {
            if byte.is_ascii_alphanumeric() {
                b.word_byte(byte.to_ascii_lowercase(), i);
            } else {
                b.sep_char(byte as char, i, i + 1);
            }
            i += 1;
        } else {
            let c = text[i..].chars().next().expect("i is on a char boundary");
            let end = i + c.len_utf8();
            fold_char(c, &mut |d| {
                if d.is_alphanumeric() {
                    b.word_char(d, i, end);
                } else {
                    b.sep_char(d, i, end);
                }
            });
            i = end;
        }
    }
    b.finish()
}

/// Steps 1-5 of the normalisation for one non-ASCII character.
fn fold_char(c: char, out: &mut impl FnMut(char)) {
    decompose_compatible(c, |k| {
        for u in k.to_uppercase() {
            for l in u.to_lowercase() {
                decompose_canonical(l, |d| {
                    if !is_invisible(d) && !is_nonspacing_mark(d) {
                        out(lookalike(d));
                    }
                });
            }
        }
    });
}

/// Default_Ignorable_Code_Point (Unicode 15): none of them changes what a word says.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// General category Mn. `is_combining_mark` covers all marks; spacing marks (Mc) carry
/// meaning in many scripts, so only non-spacing ones are treated as diacritics.
fn is_nonspacing_mark(c: char) -> bool {
    static MN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\A\p{Mn}\z").expect("valid Unicode class"));
    is_combining_mark(c) && MN.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Step 5: letters of other scripts that imitate an ASCII letter or digit become it.
fn lookalike(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c.script() {
        Script::Latin | Script::Common | Script::Inherited | Script::Unknown => c,
        _ => {
            let mut buf = [0; 4];
            let mut sk = unicode_security::skeleton(c.encode_utf8(&mut buf));
            match (sk.next(), sk.next()) {
                (Some(a), None) if a.is_ascii_alphanumeric() => a.to_ascii_lowercase(),
                _ => c,
            }
        }
    }
}

/// Separator characters that may spell a word letter by letter.
fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '*') || c.is_whitespace()
}

/// A candidate place to join two single-letter words: the space before word `word`.
struct Join {
    space: usize,
    word: usize,
    /// The separator's characters, as a range of `Builder::sep_buf`.
    sep: (usize, usize),
}

/// Incremental builder of a `Normalized`, fed one normalised character at a time.
struct Builder {
    text: String,
    starts: Vec<usize>,
    ends: Vec<usize>,
    /// Words started so far.
    words: usize,
    in_word: bool,
    word_chars: usize,
    word_alpha: bool,
    /// Whether the previous (finished) word was a single letter.
    prev_single: bool,
    /// Original span of the separator run since the last word.
    sep_start: usize,
    sep_end: usize,
    /// Whether the current separator could join letters (only tracked after a single letter).
    sep_joinable: bool,
    sep_from: usize,
    sep_buf: String,
    /// Join to record if the current word turns out to be a single letter.
    pending: Option<Join>,
    joins: Vec<Join>,
}

impl Builder {
    fn with_capacity(n: usize) -> Builder {
        Builder {
            text: String::with_capacity(n),
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            words: 0,
            in_word: false,
            word_chars: 0,
            word_alpha: false,
            prev_single: false,
            sep_start: usize::MAX,
            sep_end: 0,
            sep_joinable: false,
            sep_from: 0,
            sep_buf: String::new(),
            pending: None,
            joins: Vec::new(),
        }
    }

    fn begin_word(&mut self, alpha: bool) {
        if self.words > 0 {
            let space = self.text.len();
            self.text.push(' ');
            self.starts.push(self.sep_start);
            self.ends.push(self.sep_end);
            if self.prev_single && self.sep_joinable {
                self.pending = Some(Join {
                    space,
                    word: self.words,
                    sep: (self.sep_from, self.sep_buf.len()),
                });
            }
        }
        self.words += 1;
        self.in_word = true;
        self.word_chars = 0;
        self.word_alpha = alpha;
    }

    fn end_word(&mut self) {
        let single = self.word_chars == 1 && self.word_alpha;
        if let Some(join) = self.pending.take() {
            if single {
                self.joins.push(join);
            }
        }
        self.prev_single = single;
        self.in_word = false;
        self.sep_start = usize::MAX;
        self.sep_joinable = single;
        self.sep_from = self.sep_buf.len();
    }

    #[inline]
    fn word_byte(&mut self, b: u8, pos: usize) {
        if !self.in_word {
            self.begin_word(b.is_ascii_alphabetic());
        }
        self.word_chars += 1;
        self.text.push(b as char);
        self.starts.push(pos);
        self.ends.push(pos + 1);
    }

    fn word_char(&mut self, c: char, start: usize, end: usize) {
        if !self.in_word {
            self.begin_word(c.is_alphabetic());
        }
        self.word_chars += 1;
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.starts.push(start);
            self.ends.push(end);
        }
    }

    #[inline]
    fn sep_char(&mut self, c: char, start: usize, end: usize) {
        if self.in_word {
            self.end_word();
        }
        if self.words == 0 {
            return;
        }
        if self.sep_start == usize::MAX {
            self.sep_start = start;
        }
        self.sep_end = end;
        if self.sep_joinable {
            if is_joiner(c) {
                self.sep_buf.push(c);
            } else {
                self.sep_joinable = false;
            }
        }
    }

    fn finish(mut self) -> Normalized {
        if self.in_word {
            self.end_word();
        }
        if !self.joins.is_empty() {
            self.apply_joins();
        }
        Normalized {
            text: self.text,
            starts: self.starts,
            ends: self.ends,
        }
    }

    /// Removes the spaces inside letter-spelled words (see the module docs for the rule).
    fn apply_joins(&mut self) {
        let joins = &self.joins;
        let sep = |j: &Join| &self.sep_buf[j.sep.0..j.sep.1];
        // Maximal runs of joins between consecutive words with the same separator,
        // as half-open ranges of `joins`.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (k, j) in joins.iter().enumerate() {
            if let Some(run) = runs.last_mut() {
                let prev = &joins[run.1 - 1];
                if prev.word + 1 == j.word && sep(prev) == sep(j) {
                    run.1 = k + 1;
                    continue;
                }
            }
            runs.push((k, k + 1));
        }
        // Neighbouring runs that share a letter: the longer keeps it, the left on a tie.
        for r in 0..runs.len().saturating_sub(1) {
            let (a, b) = (runs[r], runs[r + 1]);
            if a.0 == a.1 || joins[a.1 - 1].word + 1 != joins[b.0].word {
                continue;
            }
            if a.1 - a.0 >= b.1 - b.0 {
                runs[r + 1].0 += 1;
            } else {
                runs[r].1 -= 1;
            }
        }
        let mut remove: Vec<usize> = runs
            .iter()
            .flat_map(|&(from, to)| joins[from..to].iter().map(|j| j.space))
            .collect();
        if remove.is_empty() {
            return;
        }
        remove.sort_unstable();

        let mut text = String::with_capacity(self.text.len());
        let mut from = 0;
        for &p in &remove {
            text.push_str(&self.text[from..p]);
            from = p + 1;
        }
        text.push_str(&self.text[from..]);
        self.text = text;
        let mut next = remove.iter().peekable();
        let mut idx = 0;
        let mut keep = |_: &usize| {
            let gone = next.peek() == Some(&&idx);
            if gone {
                next.next();
            }
            idx += 1;
            !gone
        };
        self.starts.retain(&mut keep);
        let mut next = remove.iter().peekable();
        let mut idx = 0;
        self.ends.retain(|_| {
            let gone = next.peek() == Some(&&idx);
            if gone {
                next.next();
            }
            idx += 1;
            !gone
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn deny(terms: &[&str]) -> Matcher {
        Matcher::new(&s(terms), &[], &[], &[]).unwrap()
    }

    /// The original text of every hit, in order.
    fn spans(m: &Matcher, text: &str) -> Vec<(String, String)> {
        m.find(text)
            .into_iter()
            .map(|h| (h.term.clone(), text[h.start..h.end].to_string()))
            .collect()
    }

    #[test]
    fn normalises_examples() {
        let cases = [
            ("Hello #LAYOFFS!", "hello layoffs"),
            ("ＬＡＹＯＦＦＳ", "layoffs"),
            ("layöffs", "layoffs"),
            ("l\u{430}y\u{43e}ffs", "layoffs"),
            ("Nobody here... knows how-to DRIVE!", "nobody here knows how to drive"),
            ("f.u.c.k", "fuck"),
            ("F-U-C-K", "fuck"),
            ("f u c k", "fuck"),
            ("I f.u.c.k", "i fuck"),
            ("I f u c k", "ifuck"),
            ("a.b c.d.e.f", "ab cdef"),
            ("I'm here", "i m here"),
            ("lay\u{200B}off\u{AD}s", "layoffs"),
            ("STRASSE straße", "strasse strasse"),
            ("  \u{1F525}fire\u{1F525}  ", "fire"),
            ("!!!", ""),
            ("modern burn", "modern burn"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).text, want, "input {input:?}");
        }
    }

    #[test]
    fn contract_table() {
        // (terms, text, expected (term, original text of the span) pairs)
        let cases: &[(&[&str], &str, &[(&str, &str)])] = &[
            (&["layoffs"], "Hello #LAYOFFS!", &[("layoffs", "LAYOFFS")]),
            (&["layoffs"], "ＬＡＹＯＦＦＳ soon", &[("layoffs", "ＬＡＹＯＦＦＳ")]),
            (&["layoffs"], "big layöffs", &[("layoffs", "layöffs")]),
            (&["layoffs"], "big lay\u{F6}ffs", &[("layoffs", "lay\u{F6}ffs")]),
            (&["layoffs"], "big layo\u{308}ffs", &[("layoffs", "layo\u{308}ffs")]),
            (&["layoffs"], "l\u{430}y\u{43e}ffs now", &[("layoffs", "l\u{430}y\u{43e}ffs")]),
            (&["layoffs"], "lay\u{3bf}ffs", &[("layoffs", "lay\u{3bf}ffs")]),
            (&["bum"], "burn it", &[]),
            (&["modem"], "a modern modem", &[("modem", "modem")]),
            (&["layoffs"], "lay\u{200B}offs", &[("layoffs", "lay\u{200B}offs")]),
            (&["layoffs"], "lay\u{200D}offs", &[("layoffs", "lay\u{200D}offs")]),
            (&["layoffs"], "lay\u{AD}offs", &[("layoffs", "lay\u{AD}offs")]),
            (
                &["nobody here knows how to drive"],
                "Nobody here...\nknows how-to DRIVE!",
                &[("nobody here knows how to drive", "Nobody here...\nknows how-to DRIVE")],
            ),
            (&["fuck"], "f.u.c.k", &[("fuck", "f.u.c.k")]),
            (&["fuck"], "F-U-C-K!", &[("fuck", "F-U-C-K")]),
            (&["fuck"], "oh f u c k", &[("fuck", "f u c k")]),
            (&["fuck"], "f u c k", &[("fuck", "f u c k")]),
            (&["fuck"], "f_u_c_k", &[("fuck", "f_u_c_k")]),
            (&["fuck"], "f*u*c*k", &[("fuck", "f*u*c*k")]),
            (&["fuck"], "I f.u.c.k", &[("fuck", "f.u.c.k")]),
            (&["ass"], "first class", &[]),
            (&["ass"], "what an ass.", &[("ass", "ass")]),
            (&["layoffs"], "#layoffs", &[("layoffs", "layoffs")]),
            (&["layoffs"], "LAYOFFS!", &[("layoffs", "LAYOFFS")]),
            (&["layoffs"], "\u{1F525}layoffs\u{1F525}", &[("layoffs", "layoffs")]),
            (&["fire"], "\u{1F469}\u{200D}\u{1F692}fire", &[("fire", "fire")]),
            (&["strasse"], "Straße", &[("strasse", "Straße")]),
            (&["layoffs"], "layoffsx layoffs2", &[]),
        ];
        for (terms, text, want) in cases {
            let m = deny(terms);
            let got = spans(&m, text);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "terms {terms:?} text {text:?}");
        }
    }

    #[test]
    fn exact_byte_span() {
        let m = deny(&["layoffs"]);
        let hits = m.find("Hello #LAYOFFS!");
        assert_eq!(
            hits,
            vec![Hit {
                term: "layoffs".into(),
                level: Level::Deny,
                regex: false,
                start: 7,
                end: 14
            }]
        );
    }

    #[test]
    fn allow_spans_and_levels() {
        let m = Matcher::new(
            &s(&["kill"]),
            &s(&["layoffs", "kill"]),
            &s(&["kill switch"]),
            &[],
        )
        .unwrap();
        assert_eq!(m.len(), 4);
        let text = "Flip the kill switch, then kill the layoffs";
        let hits = m.find(text);
        let got: Vec<_> = hits
            .iter()
            .map(|h| (h.term.as_str(), h.level, &text[h.start..h.end]))
            .collect();
        // "kill" in deny and warn: deduplicated to the stricter level.
        assert_eq!(
            got,
            vec![("kill", Level::Deny, "kill"), ("layoffs", Level::Warn, "layoffs")]
        );
        assert_eq!(hits[0].start, 27);
    }

    #[test]
    fn regex_hits() {
        let m = Matcher::new(&[], &[], &s(&["free iphone case"]), &s(&[r"free\s+i?phones?"]))
            .unwrap();
        let text = "Win FREE   iPhones now, or a free iphone case";
        let hits = m.find(text);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].regex);
        assert_eq!(hits[0].level, Level::Deny);
        assert_eq!(hits[0].term, r"free\s+i?phones?");
        assert_eq!(&text[hits[0].start..hits[0].end], "FREE   iPhones");
    }

    #[test]
    fn bad_regex_names_index() {
        let err = Matcher::new(&[], &[], &[], &s(&["ok", "(unclosed"])).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(compile_regex("a(").is_err());
    }

    #[test]
    fn empty_terms_are_ignored() {
        assert_eq!(normalize_term("!!!"), "");
        assert_eq!(normalize_term("  Kill--Switch "), "kill switch");
        let m = deny(&["!!!", "\u{200B}"]);
        assert!(m.is_empty());
        assert!(m.find("!!! anything").is_empty());
    }

    #[test]
    fn overlapping_terms_all_reported() {
        let m = deny(&["ass", "assassin", "kill", "kill switch", "switch"]);
        let text = "the assassin hit the KILL SWITCH";
        let got = spans(&m, text);
        assert_eq!(
            got,
            vec![
                ("assassin".into(), "assassin".into()),
                ("kill".into(), "KILL".into()),
                ("kill switch".into(), "KILL SWITCH".into()),
                ("switch".into(), "SWITCH".into()),
            ]
        );
    }
}
