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
//!    removes diacritics (and, in scripts such as Devanagari, some vowel signs; harmless
//!    for matching because terms lose the same marks),
//! 4. dropping invisible (default-ignorable) characters such as zero-width spaces and joiners,
//!    soft hyphens, bidi controls and variation selectors,
//! 5. mapping look-alikes: a character whose script is not Latin, Common or Inherited and
//!    whose UTS #39 confusable skeleton is a single ASCII letter or digit becomes that (lower
//!    case) ASCII character. Latin text is never rewritten, so `burn` never becomes `bum`.
//!
//! The resulting characters are split into words of alphanumeric characters; every run of
//! anything else (spaces, punctuation, symbols, emoji) becomes one ASCII space, and leading
//! and trailing runs disappear. Apostrophes separate too (`don't` reads `don t`, on both
//! sides). Finally letter-spelled words are joined: a run of two or
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
    /// From the deny or regex list: the post must not go out as written.
    Deny,
    /// From the warn list: worth a human look, but not a reason to block.
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
    /// Byte span in the original text (not the normalised one), so `&text[start..end]` is
    /// exactly what the author wrote, disguises included; always on char boundaries.
    pub start: usize,
    /// Exclusive end of the span, see `start`.
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

/// A compiled policy term set; build it once per policy and reuse it for every post
/// (cloning is cheap: the automaton and regexes are shared).
#[derive(Clone)]
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
            // A DFA scans about 1.5x faster than a contiguous NFA; for 10,000 terms of ~8
            // bytes it builds in ~30 ms and takes ~8 MB. Beyond ~100 KB of terms its build
            // time and memory grow past what a CLI run can amortise, so fall back to the
            // contiguous NFA (~10 ms, under 1 MB for the same 10,000 terms).
            let bytes: usize = normalised.iter().map(String::len).sum();
            let kind = if bytes <= 100_000 {
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
        // Matched on the text alone; the maps back to the original are built only for a post
        // with a hit (most have none).
        let normalized = normalize_text(text);
        let bytes = normalized.as_bytes();
        let is_word_span = |s: usize, e: usize| {
            (s == 0 || bytes[s - 1] == b' ') && (e == bytes.len() || bytes[e] == b' ')
        };

        // (index into patterns or regexes, is_regex, start, end) in normalised bytes.
        let mut found: Vec<(usize, bool, usize, usize)> = Vec::new();
        let mut allowed: Vec<(usize, usize)> = Vec::new();
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(&normalized) {
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
            for m in re.find_iter(&normalized) {
                if m.start() < m.end() {
                    found.push((i, true, m.start(), m.end()));
                }
            }
        }

        found.retain(|&(_, _, s, e)| !allowed.iter().any(|&(a, b)| a <= s && e <= b));
        if found.is_empty() {
            return Vec::new();
        }
        let norm = normalize(text);
        debug_assert_eq!(norm.text, normalized);
        let mut hits: Vec<Hit> = found
            .into_iter()
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
    normalize_text(term)
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
    normalize_with(text, true)
}

/// The normalised text alone, without the maps back to the original: most posts match no
/// term, and for them the maps would be built for nothing.
pub fn normalize_text(text: &str) -> String {
    normalize_with(text, false).text
}

fn normalize_with(text: &str, track: bool) -> Normalized {
    let mut b = Builder::with_capacity(text.len(), track);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte.is_ascii_alphanumeric() {
            // Fast path: a whole run of ASCII letters and digits at once.
            let run = bytes[i..]
                .iter()
                .position(|c| !c.is_ascii_alphanumeric())
                .map_or(bytes.len(), |n| i + n);
            b.ascii_word(&bytes[i..run], i);
            i = run;
        } else if byte < 0x80 {
            b.sep_char(byte as char, i, i + 1);
            i += 1;
        } else {
            let c = text[i..].chars().next().expect("i is on a char boundary");
            let end = i + c.len_utf8();
            fold_char_cached(c, &mut |d| {
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

/// `fold_char` through a per-thread memo: posts repeat the same few non-ASCII characters
/// (accents, quotes, emoji), and folding one costs several table lookups and a skeleton.
/// The memo is cleared when it grows past a bound, so hostile input cannot grow it forever.
fn fold_char_cached(c: char, out: &mut impl FnMut(char)) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const MAX_ENTRIES: usize = 4096;
    thread_local! {
        static MEMO: RefCell<HashMap<char, Box<[char]>>> = RefCell::new(HashMap::new());
    }
    let folded = MEMO.with(|memo| {
        if let Some(chars) = memo.borrow().get(&c) {
            return chars.clone();
        }
        let mut chars = Vec::new();
        fold_char(c, &mut |d| chars.push(d));
        let chars: Box<[char]> = chars.into_boxed_slice();
        let mut memo = memo.borrow_mut();
        if memo.len() >= MAX_ENTRIES {
            memo.clear();
        }
        memo.insert(c, chars.clone());
        chars
    });
    for &d in folded.iter() {
        out(d);
    }
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
    /// Always valid UTF-8; bytes so the ASCII fast path can lower-case in bulk.
    text: Vec<u8>,
    /// Whether `starts` and `ends` are kept (see [`normalize_text`]).
    track: bool,
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
    fn with_capacity(n: usize, track: bool) -> Builder {
        let maps = if track { n } else { 0 };
        Builder {
            text: Vec::with_capacity(n),
            track,
            starts: Vec::with_capacity(maps),
            ends: Vec::with_capacity(maps),
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
            self.text.push(b' ');
            if self.track {
                self.starts.push(self.sep_start);
                self.ends.push(self.sep_end);
            }
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
        if let Some(join) = self.pending.take()
            && single
        {
            self.joins.push(join);
        }
        self.prev_single = single;
        self.in_word = false;
        self.sep_start = usize::MAX;
        self.sep_joinable = single;
        self.sep_from = self.sep_buf.len();
    }

    /// A run of ASCII letters and digits starting at original offset `pos`.
    #[inline]
    fn ascii_word(&mut self, run: &[u8], pos: usize) {
        if !self.in_word {
            self.begin_word(run[0].is_ascii_alphabetic());
        }
        self.word_chars += run.len();
        let from = self.text.len();
        self.text.extend_from_slice(run);
        self.text[from..].make_ascii_lowercase();
        if self.track {
            self.starts.extend(pos..pos + run.len());
            self.ends.extend(pos + 1..pos + run.len() + 1);
        }
    }

    fn word_char(&mut self, c: char, start: usize, end: usize) {
        if !self.in_word {
            self.begin_word(c.is_alphabetic());
        }
        self.word_chars += 1;
        self.text
            .extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        if self.track {
            for _ in 0..c.len_utf8() {
                self.starts.push(start);
                self.ends.push(end);
            }
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
            text: String::from_utf8(self.text).expect("built from chars and ASCII"),
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

        // Removing ASCII spaces keeps `text` valid UTF-8.
        remove_positions(&mut self.text, &remove);
        if self.track {
            remove_positions(&mut self.starts, &remove);
            remove_positions(&mut self.ends, &remove);
        }
    }
}

/// Removes the elements at the given sorted, distinct positions.
fn remove_positions<T>(v: &mut Vec<T>, remove: &[usize]) {
    let mut next = remove.iter().peekable();
    let mut idx = 0;
    v.retain(|_| {
        let gone = next.peek() == Some(&&idx);
        if gone {
            next.next();
        }
        idx += 1;
        !gone
    });
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
            (
                "Nobody here... knows how-to DRIVE!",
                "nobody here knows how to drive",
            ),
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

    /// (terms, text, expected (term, original text of the span) pairs)
    type Case<'a> = (&'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);

    #[test]
    fn contract_table() {
        let cases: &[Case] = &[
            (&["layoffs"], "Hello #LAYOFFS!", &[("layoffs", "LAYOFFS")]),
            (
                &["layoffs"],
                "ＬＡＹＯＦＦＳ soon",
                &[("layoffs", "ＬＡＹＯＦＦＳ")],
            ),
            (&["layoffs"], "big layöffs", &[("layoffs", "layöffs")]),
            (
                &["layoffs"],
                "big lay\u{F6}ffs",
                &[("layoffs", "lay\u{F6}ffs")],
            ),
            (
                &["layoffs"],
                "big layo\u{308}ffs",
                &[("layoffs", "layo\u{308}ffs")],
            ),
            (
                &["layoffs"],
                "l\u{430}y\u{43e}ffs now",
                &[("layoffs", "l\u{430}y\u{43e}ffs")],
            ),
            (
                &["layoffs"],
                "lay\u{3bf}ffs",
                &[("layoffs", "lay\u{3bf}ffs")],
            ),
            (&["bum"], "burn it", &[]),
            (&["modem"], "a modern modem", &[("modem", "modem")]),
            (
                &["layoffs"],
                "lay\u{200B}offs",
                &[("layoffs", "lay\u{200B}offs")],
            ),
            (
                &["layoffs"],
                "lay\u{200D}offs",
                &[("layoffs", "lay\u{200D}offs")],
            ),
            (
                &["layoffs"],
                "lay\u{AD}offs",
                &[("layoffs", "lay\u{AD}offs")],
            ),
            (
                &["nobody here knows how to drive"],
                "Nobody here...\nknows how-to DRIVE!",
                &[(
                    "nobody here knows how to drive",
                    "Nobody here...\nknows how-to DRIVE",
                )],
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
            (
                &["layoffs"],
                "\u{1F525}layoffs\u{1F525}",
                &[("layoffs", "layoffs")],
            ),
            (
                &["fire"],
                "\u{1F469}\u{200D}\u{1F692}fire",
                &[("fire", "fire")],
            ),
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
    fn normalized_maps_back_to_original() {
        let text = "\u{FB01}re at Ｃafé\u{200B}s";
        let n = normalize(text);
        assert_eq!(n.text, "fire at cafes");
        // Both letters of the ligature come from its three bytes.
        assert_eq!(n.original_span(0, 1), Some((0, 3)));
        assert_eq!(n.original_span(1, 2), Some((0, 3)));
        assert_eq!(n.original_span(0, 4), Some((0, 5)));
        // The space stands for the separator run; "cafes" spans the invisible character.
        assert_eq!(n.original_span(4, 5), Some((5, 6)));
        let (s, e) = n.original_span(8, 13).unwrap();
        assert_eq!(&text[s..e], "Ｃafé\u{200B}s");
        assert_eq!(n.original_span(3, 3), None);
        assert_eq!(n.original_span(0, 99), None);
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
            vec![
                ("kill", Level::Deny, "kill"),
                ("layoffs", Level::Warn, "layoffs")
            ]
        );
        assert_eq!(hits[0].start, 27);
    }

    #[test]
    fn regex_hits() {
        let m = Matcher::new(
            &[],
            &[],
            &s(&["free iphone case"]),
            &s(&[r"free\s+i?phones?"]),
        )
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

    /// Tiny deterministic generator so the benchmark needs no extra dependency.

    #[test]
    fn lookalike_palette_maps_to_latin() {
        for &(latin, fakes) in LOOKALIKES {
            for fake in fakes.chars() {
                assert_eq!(
                    normalize(&fake.to_string()).text,
                    latin.to_string(),
                    "{fake}"
                );
            }
        }
        // Latin letters and ASCII digits stay what they are.
        for c in ('a'..='z').chain('0'..='9') {
            assert_eq!(normalize(&c.to_string()).text, c.to_string());
        }
        assert_eq!(normalize("ɑ").text, "ɑ"); // Latin alpha is Latin: left alone
    }

    /// Cyrillic and Greek letters that imitate ASCII letters.
    const LOOKALIKES: &[(char, &str)] = &[
        ('a', "\u{430}\u{3b1}"),
        ('c', "\u{441}"),
        ('e', "\u{435}"),
        ('h', "\u{4bb}"),
        ('i', "\u{456}\u{3b9}"),
        ('j', "\u{458}"),
        ('o', "\u{43e}\u{3bf}"),
        ('p', "\u{440}\u{3c1}"),
        ('s', "\u{455}"),
        ('u', "\u{3c5}"),
        ('v', "\u{3bd}"),
        ('x', "\u{445}"),
        ('y', "\u{443}"),
    ];

    const INVISIBLES: &[char] = &[
        '\u{200B}', '\u{200C}', '\u{200D}', '\u{AD}', '\u{2060}', '\u{FEFF}',
    ];

    /// A straightforward re-implementation of the contract, char by char with no fast path,
    /// using different building blocks where possible (whole-string NFKC, `\p{Mn}`, the
    /// skeleton's own notion of ignorable characters).
    mod reference {
        use super::super::{Level, compile_regex};
        use regex::Regex;
        use std::collections::BTreeMap;
        use std::sync::LazyLock;
        use unicode_normalization::UnicodeNormalization;
        use unicode_script::{Script, UnicodeScript};

        /// (normalised char, original start, original end)
        pub type Chars = Vec<(char, usize, usize)>;

        static MN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Mn}$").unwrap());

        fn fold(k: char, s: usize, e: usize, out: &mut Chars) {
            for u in k.to_uppercase() {
                for l in u.to_lowercase() {
                    for d in l.to_string().nfd() {
                        let ds = d.to_string();
                        let skeleton: String = unicode_security::skeleton(&ds).collect();
                        if skeleton.is_empty() || MN.is_match(&ds) {
                            continue; // default-ignorable (the skeleton drops those) or Mn
                        }
                        let other_script = !matches!(
                            d.script(),
                            Script::Latin | Script::Common | Script::Inherited | Script::Unknown
                        );
                        let mut sk = skeleton.chars();
                        let mapped = match (sk.next(), sk.next()) {
                            (Some(a), None)
                                if other_script && !d.is_ascii() && a.is_ascii_alphanumeric() =>
                            {
                                a.to_ascii_lowercase()
                            }
                            _ => d,
                        };
                        out.push((mapped, s, e));
                    }
                }
            }
        }

        /// Per original character: NFKC of that character alone, then fold.
        pub fn chars(text: &str) -> Chars {
            let mut out = Vec::new();
            for (i, c) in text.char_indices() {
                for k in c.to_string().nfkc() {
                    fold(k, i, i + c.len_utf8(), &mut out);
                }
            }
            out
        }

        /// NFKC of the whole string first (no offsets), to check context-freeness.
        pub fn chars_whole(text: &str) -> Chars {
            let mut out = Vec::new();
            for k in text.nfkc() {
                fold(k, 0, 0, &mut out);
            }
            out
        }

        pub fn normalize(chars: &Chars) -> (String, Vec<usize>, Vec<usize>) {
            let mut words: Vec<Chars> = Vec::new();
            let mut seps: Vec<Chars> = Vec::new(); // seps[k] lies between words k and k+1
            let mut cur: Chars = Vec::new();
            let mut in_word = false;
            for &(c, s, e) in chars {
                if c.is_alphanumeric() {
                    if !in_word {
                        if !words.is_empty() {
                            seps.push(std::mem::take(&mut cur));
                        }
                        words.push(Vec::new());
                        in_word = true;
                    }
                    words.last_mut().unwrap().push((c, s, e));
                } else {
                    in_word = false;
                    if !words.is_empty() {
                        cur.push((c, s, e));
                    }
                }
            }
            let single = |w: &Chars| w.len() == 1 && w[0].0.is_alphabetic();
            let sep_str = |k: usize| seps[k].iter().map(|x| x.0).collect::<String>();
            let eligible = |k: usize| {
                single(&words[k])
                    && single(&words[k + 1])
                    && seps[k]
                        .iter()
                        .all(|x| matches!(x.0, '.' | '-' | '_' | '*') || x.0.is_whitespace())
            };
            let mut runs: Vec<Vec<usize>> = Vec::new();
            for k in (0..seps.len()).filter(|&k| eligible(k)) {
                match runs.last_mut() {
                    Some(r) if r[r.len() - 1] + 1 == k && sep_str(r[0]) == sep_str(k) => r.push(k),
                    _ => runs.push(vec![k]),
                }
            }
            for r in 0..runs.len().saturating_sub(1) {
                if runs[r].is_empty() || runs[r][runs[r].len() - 1] + 1 != runs[r + 1][0] {
                    continue;
                }
                if runs[r].len() >= runs[r + 1].len() {
                    runs[r + 1].remove(0);
                } else {
                    runs[r].pop();
                }
            }
            let joined: Vec<usize> = runs.concat();
            let (mut text, mut starts, mut ends) = (String::new(), Vec::new(), Vec::new());
            for (k, w) in words.iter().enumerate() {
                if k > 0 && !joined.contains(&(k - 1)) {
                    text.push(' ');
                    starts.push(seps[k - 1][0].1);
                    ends.push(seps[k - 1][seps[k - 1].len() - 1].2);
                }
                for &(c, s, e) in w {
                    text.push(c);
                    for _ in 0..c.len_utf8() {
                        starts.push(s);
                        ends.push(e);
                    }
                }
            }
            (text, starts, ends)
        }

        pub type Found = Vec<(usize, usize, String, Level, bool)>;

        pub fn find(
            deny: &[String],
            warn: &[String],
            allow: &[String],
            regex: &[String],
            text: &str,
        ) -> Found {
            let (nt, starts, ends) = normalize(&chars(text));
            let whole_word = |s: usize, e: usize| {
                (s == 0 || nt.as_bytes()[s - 1] == b' ')
                    && (e == nt.len() || nt.as_bytes()[e] == b' ')
            };
            let occurrences = |term: &str| -> Vec<(usize, usize)> {
                let needle = normalize(&chars(term)).0;
                if needle.is_empty() {
                    return Vec::new();
                }
                (0..nt.len())
                    .filter(|&i| nt.is_char_boundary(i) && nt[i..].starts_with(&needle))
                    .map(|i| (i, i + needle.len()))
                    .filter(|&(s, e)| whole_word(s, e))
                    .collect()
            };
            let allowed: Vec<(usize, usize)> = allow.iter().flat_map(|t| occurrences(t)).collect();
            let mut raw = Vec::new();
            for (list, level) in [(deny, Level::Deny), (warn, Level::Warn)] {
                for t in list {
                    for (s, e) in occurrences(t) {
                        raw.push((s, e, t.clone(), level, false));
                    }
                }
            }
            for p in regex {
                for m in compile_regex(p).unwrap().find_iter(&nt) {
                    if !m.as_str().is_empty() {
                        raw.push((m.start(), m.end(), p.clone(), Level::Deny, true));
                    }
                }
            }
            let mut best: BTreeMap<(usize, usize, String), (Level, bool)> = BTreeMap::new();
            for (s, e, term, level, is_regex) in raw {
                if allowed.iter().any(|&(a, b)| a <= s && e <= b) {
                    continue;
                }
                let key = (starts[s], ends[e - 1], term);
                let v = best.entry(key).or_insert((level, is_regex));
                *v = (*v).min((level, is_regex));
            }
            best.into_iter()
                .map(|((s, e, t), (l, r))| (s, e, t, l, r))
                .collect()
        }
    }

    mod props {
        use super::super::*;
        use super::{INVISIBLES, LOOKALIKES, reference};
        use proptest::prelude::*;
        use proptest::sample::select;

        const TEXT_PIECES: &[&str] = &[
            "a",
            "b",
            "a",
            "b",
            "c",
            "s",
            " ",
            " ",
            " ",
            ".",
            "-",
            "*",
            "_",
            "\n",
            "!",
            "#",
            "'",
            "A",
            "B",
            "S",
            "\u{430}",
            "\u{3bf}",
            "á",
            "e\u{301}",
            "\u{301}",
            "\u{200B}",
            "\u{AD}",
            "\u{200D}",
            "ß",
            "ﬁ",
            "Ａ",
            "ｂ",
            "🙂",
            "中",
            "한",
            "İ",
            "ǅ",
            "ı",
            "Σ",
            "ς",
            "Ⅸ",
            "①",
            "\u{3000}",
            "\u{A0}",
            "Ꭺ",
            "½",
            " . ",
            "x",
            "ab",
            "ss",
            "．",
            "ɑ",
            "\u{345}",
            "ǰ",
            "ΐ",
            "\u{314}",
            "\u{212A}",
            "ﬀ",
            "㎏",
            "⑴",
            "ｶ",
            "\u{E0041}",
            "\u{FE0F}",
            "Ι",
            "\u{E9}",
            "ŉ",
            "ⓐ",
            "\u{1D41A}",
        ];
        const TERM_PIECES: &[&str] = &[
            "a", "b", "c", "s", " ", "a b", "á", "ß", "ss", "\u{3bf}", "-", "ab", "x",
        ];
        const REGEXES: &[&str] = &[r"a+b", r"\bb\b", r"ab?c", r"s{2}", r"x\s"];

        fn text(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(select(pieces), 0..max).prop_map(|v| v.concat())
        }

        fn terms(max: usize) -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(
                prop::collection::vec(select(TERM_PIECES), 1..4).prop_map(|v| v.concat()),
                0..max,
            )
        }

        /// One letter as the author might disguise it.
        fn disguise(c: char, how: u8) -> String {
            let lookalike = LOOKALIKES.iter().find(|l| l.0 == c).map(|l| l.1);
            match how % 5 {
                1 => c.to_ascii_uppercase().to_string(),
                2 => char::from_u32(c as u32 + 0xFEE0).unwrap().to_string(), // full-width
                3 if lookalike.is_some() => {
                    let fakes: Vec<char> = lookalike.unwrap().chars().collect();
                    fakes[how as usize % fakes.len()].to_string()
                }
                4 => char::from_u32(c as u32 + 0xFEE0 - 0x20)
                    .unwrap()
                    .to_string(), // full-width upper
                _ => c.to_string(),
            }
        }

        proptest! {
            // 256 cases keep `cargo test` fast; PROPTEST_CASES=20000 digs deeper.
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
            ))]

            #[test]
            fn planted_term_is_found(
                words in prop::collection::vec("[a-z]{2,7}", 1..4),
                others in prop::collection::vec("[a-z]{2,7}( [a-z]{2,7})?", 0..6),
                hows in prop::collection::vec(any::<u8>(), 30),
                invisible in prop::collection::vec(any::<u8>(), 30),
                inner in prop::collection::vec(
                    select(&[" ", "  ", "\n", " - ", "... ", ", ", "!? ", "\t", "/", "\u{A0}"][..]), 3),
                prefix in "[a-z ,.!]{0,30}",
                pre in select(&[" ", "#", " #", "\n", "(", "\"", "¡", "… ", " @"][..]),
                post in select(&[" ", "!", "!!", ".", ")", "?", "\n", " 🙂", "🔥", "…", "'s"][..]),
                suffix in "[a-z ,.!]{0,30}",
            ) {
                let term = words.join(" ");
                let mut planted = String::new();
                let mut n = 0;
                for (w, word) in words.iter().enumerate() {
                    if w > 0 {
                        planted.push_str(inner[w - 1]);
                    }
                    let letters: Vec<char> = word.chars().collect();
                    for (k, &c) in letters.iter().enumerate() {
                        planted.push_str(&disguise(c, hows[n % hows.len()]));
                        if k + 1 < letters.len() && invisible[n % invisible.len()] % 4 == 0 {
                            planted.push(INVISIBLES[n % INVISIBLES.len()]);
                        }
                        n += 1;
                    }
                }
                let text = format!("{prefix}{pre}{planted}{post}{suffix}");
                let mut deny = others.clone();
                deny.push(term.clone());
                let m = Matcher::new(&deny, &[], &[], &[]).unwrap();
                let start = prefix.len() + pre.len();
                let end = start + planted.len();
                let hits = m.find(&text);
                prop_assert!(
                    hits.iter().any(|h| h.term == term && h.start == start && h.end == end),
                    "term {:?} planted as {:?} in {:?}; normalised {:?}; hits {:?}",
                    term, planted, text, normalize(&text).text, hits
                );
            }

            #[test]
            fn matches_reference(
                text in text(TEXT_PIECES, 40),
                deny in terms(4),
                warn in terms(3),
                allow in terms(2),
                regex in prop::collection::vec(select(REGEXES).prop_map(String::from), 0..2),
            ) {
                let n = normalize(&text);
                let (ref_text, ref_starts, ref_ends) = reference::normalize(&reference::chars(&text));
                prop_assert_eq!(&n.text, &ref_text);
                prop_assert_eq!(&normalize_text(&text), &ref_text, "the untracked path differs");
                prop_assert_eq!(&n.starts, &ref_starts);
                prop_assert_eq!(&n.ends, &ref_ends);
                let whole = reference::normalize(&reference::chars_whole(&text)).0;
                prop_assert_eq!(&n.text, &whole, "per-char NFKC differs from whole-string NFKC");

                let m = Matcher::new(&deny, &warn, &allow, &regex).unwrap();
                let got: reference::Found = m
                    .find(&text)
                    .into_iter()
                    .map(|h| (h.start, h.end, h.term, h.level, h.regex))
                    .collect();
                let want = reference::find(&deny, &warn, &allow, &regex, &text);
                prop_assert_eq!(got, want, "normalised {:?}", n.text);
            }
        }
    }
}
