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
//! 0. a character that imitates a plain letter on its own becomes that letter at once: the
//!    generated table in `tables.rs` (see `tools/gen_lookalikes.py`) lists the letters of
//!    other scripts whose UTS #39 confusable prototype is one plain letter (Cyrillic `к`,
//!    Greek `κ` and `ϲ`, Cherokee, Coptic, ...), and the Latin letterforms that imitate one
//!    (small capitals `ʟ`, stroke and hook letters `ł ø đ ħ ƒ ɑ ƽ`, circled, parenthesized
//!    and squared letters `⒧ 🅛 🅻`, regional indicators `🇱`). Plain ASCII is never
//!    rewritten, so `burn` never becomes `bum`;
//! 1. NFKC (computed as the compatibility decomposition of the character; canonical
//!    composition is skipped because step 3 undoes it anyway),
//! 2. case folding, approximated as `to_lowercase(to_uppercase(c))` so that `ß`/`SS`/`ss`
//!    and `ς`/`σ` meet (no Turkish or other locale-specific rules),
//! 3. canonical decomposition, dropping non-spacing and enclosing marks (`Mn`, `Me`): this
//!    removes diacritics and enclosing circles (and, in scripts such as Devanagari, some
//!    vowel signs; harmless for matching because terms lose the same marks),
//! 4. dropping invisible characters: default-ignorable ones (zero-width spaces and joiners,
//!    soft hyphens, bidi controls, variation selectors, tags) and every format character
//!    (`Cf`, which includes U+FFF9..U+FFFB),
//! 5. the table of step 0 again, for what steps 1-4 produced.
//!
//! Han and Hangul characters are never mapped (a syllable or an ideograph that looks like
//! `Y` is not standing in for it).
//!
//! Text inside a right-to-left override (U+202E up to its U+202C or the end of the
//! paragraph) is first put in the order it is displayed, grapheme by grapheme.
//!
//! The resulting characters are split into words of alphanumeric characters; every run of
//! anything else (spaces, punctuation, symbols, emoji) becomes one ASCII space, and leading
//! and trailing runs disappear. Apostrophes separate too (`don't` reads `don t`, on both
//! sides). Finally letter-spelled words are joined: a run of two or more single-letter
//! words, each separated from the next by a run of joiners (whitespace, `.` `-` `_` `*` `/`
//! `|` `\` `~` `+`, dashes, symbols and emoji, the braille blank), becomes one word, even when
//! the separators differ (`l.a-y_o*f f s`). Where a single whitespace separator stands
//! beside punctuation ones, the run is split there, so `I f.u.c.k` reads `i fuck` and
//! `a.b c.d` reads `ab cd`. Known limitation: a space-spelled run next to an unrelated
//! single-letter word merges with it (`I f u c k` becomes `ifuck`); and initials are
//! letter-spelled words (`Dr. A.S.S. Murthy` reads `dr ass murthy`, which is flagged on
//! purpose: the characters are those of the evasion `a.s.s`; allow the name to let it
//! through).
//!
//! A text is also read a second way when it has a hashtag in CamelCase or with digits
//! (`#BigLayoffs2026` also reads `big layoffs 2026`) or a word hyphenated with a single
//! hyphen (`lay-offs` also reads `layoffs`); both readings are matched.
//!
//! ASCII bytes skip all of this: a 256-entry table classifies each byte (letter or digit,
//! joiner, white space, other separator, non-ASCII), and runs of ASCII letters and digits
//! are lower-cased and copied eight bytes at a time, which keeps mostly-ASCII posts on a
//! fast path. The folding of a non-ASCII character is remembered in a small fixed-size cache
//! kept with the per-thread builder, so a post allocates nothing and the same accents and
//! emoji are folded once.
//!
//! # Matching
//!
//! All deny, warn and allow terms live in one hash table of whole-word runs (`words.rs`),
//! and every whole-word occurrence of every term is reported, overlapping ones included. A hit counts only when it starts at the start of the text or
//! after a space and ends at the end or before a space. Deny and warn hits (and regex hits)
//! lying inside an allow hit (of either reading) are dropped. Spans are widened to grapheme
//! boundaries, so a letter is never reported without its marks.

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};
use unicode_normalization::char::{decompose_canonical, decompose_compatible, is_combining_mark};

mod tables;
mod words;

/// The most terms one `[banned_terms]` table (deny, warn and allow together) may hold;
/// `gate policy check` rejects more. At this size the matcher builds in about 0.15 s
/// (`GATE_BENCH=hostile cargo bench --bench terms`).
pub const MAX_TERMS: usize = 100_000;

/// The longest term, in bytes as written; `gate policy check` rejects longer ones.
pub const MAX_TERM_BYTES: usize = 256;

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
    /// Every normalised term, by whole words.
    words: words::WordSet,
    /// Indexed by pattern id.
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

        // Identical (term, list) pairs are one pattern: a term listed a million times costs
        // what it costs once.
        // Every normalised term goes into one buffer (ranges of it, by pattern id), through
        // one builder: a policy of 10,000 terms costs few allocations.
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut buffer = String::new();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let mut seen: std::collections::HashSet<(&str, u8), words::Fixed> =
            std::collections::HashSet::with_capacity_and_hasher(
                deny.len() + warn.len() + allow.len(),
                words::Fixed,
            );
        let lists = [(deny, List::Deny), (warn, List::Warn), (allow, List::Allow)];
        with_scratch(|b| {
            for (terms, list) in lists {
                for term in terms {
                    if !seen.insert((term.as_str(), list as u8)) {
                        continue;
                    }
                    let from = buffer.len();
                    if already_normal(term) {
                        buffer.push_str(term);
                    } else {
                        b.run(term);
                        if b.text.is_empty() {
                            continue;
                        }
                        buffer.push_str(
                            std::str::from_utf8(&b.text).expect("built from chars and ASCII"),
                        );
                    }
                    ranges.push((from, buffer.len()));
                    patterns.push(Pattern {
                        term: term.clone(),
                        list,
                    });
                }
            }
        });
        let words = words::WordSet::new(
            ranges
                .iter()
                .enumerate()
                .map(|(id, &(a, b))| (&buffer[a..b], id as u32)),
        );

        Ok(Matcher {
            words,
            patterns,
            regexes,
        })
    }

    /// Every hit, sorted by (start, end), deduplicated (same term + same span once, keeping
    /// the stricter level) so a term listed twice does not inflate the report.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        // Matched on the text alone, in buffers kept between posts; the maps back to the
        // original are built only for a post with a hit (most have none).
        self.find_with(text, true)
    }

    /// [`Matcher::find`], with the prefilter that proves most posts need no normalisation
    /// (`Builder::proves_clean`) or (for the tests) without it.
    fn find_with(&self, text: &str, prefilter: bool) -> Vec<Hit> {
        let candidate = with_scratch(|b| {
            if prefilter && self.regexes.is_empty() && b.proves_clean(text, &self.words) {
                return false;
            }
            b.run(text);
            self.any_candidate(&b.text) || (b.has_alt && self.any_candidate(&b.alt_text))
        });
        if !candidate {
            return Vec::new();
        }

        // (index into patterns or regexes, is_regex, original start, original end).
        let mut found: Vec<(usize, bool, usize, usize)> = Vec::new();
        let mut allowed: Vec<(usize, usize)> = Vec::new();
        // The normalisation again, with the maps, in this thread's tracked builder (its
        // buffers and fold cache are kept between posts, like the untracked one's).
        with_tracked(|b| {
            b.run(text);
            let readings = [
                (&b.text, &b.starts, &b.ends),
                (&b.alt_text, &b.alt_starts, &b.alt_ends),
            ];
            let n = if b.has_alt { 2 } else { 1 };
            for (reading, starts, ends) in readings.into_iter().take(n) {
                self.scan(reading, |id, is_regex, s, e| {
                    let (s, e) = original_span(starts, ends, s, e).expect("non-empty match");
                    let (s, e) = grapheme_span(text, s, e);
                    if !is_regex && self.patterns[id].list == List::Allow {
                        allowed.push((s, e));
                    } else {
                        found.push((id, is_regex, s, e));
                    }
                });
            }
        });
        found.retain(|&(_, _, s, e)| !allowed.iter().any(|&(a, b)| a <= s && e <= b));
        let mut hits: Vec<Hit> = found
            .into_iter()
            .map(|(i, is_regex, start, end)| {
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

    /// Whether a normalised text has any whole-word deny or warn hit, or any regex hit
    /// (allow terms are weighed only once there is something to allow).
    fn any_candidate(&self, bytes: &[u8]) -> bool {
        let mut any = false;
        self.words.scan(bytes, |id, _, _| {
            any = self.patterns[id as usize].list != List::Allow;
            !any
        });
        if any || self.regexes.is_empty() {
            return any;
        }
        let text = std::str::from_utf8(bytes).expect("normalised text is UTF-8");
        self.regexes.iter().any(|(_, re)| re.is_match(text))
    }

    /// Calls `hit(index, is_regex, start, end)` for every whole-word term hit (of every
    /// list) and every non-empty regex hit in a normalised text.
    fn scan(&self, bytes: &[u8], mut hit: impl FnMut(usize, bool, usize, usize)) {
        self.words.scan(bytes, |id, s, e| {
            hit(id as usize, false, s, e);
            true
        });
        let text = std::str::from_utf8(bytes).expect("normalised text is UTF-8");
        for (i, (_, re)) in self.regexes.iter().enumerate() {
            for m in re.find_iter(text) {
                if m.start() < m.end() {
                    hit(i, true, m.start(), m.end());
                }
            }
        }
    }

    /// Number of distinct (deny+warn+allow) patterns, for diagnostics; terms that
    /// normalised to nothing are not counted.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when no term survived normalisation (regexes are not counted).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Widens an original span to grapheme boundaries, so that a finding never splits a
/// letter from its marks (`l̷a̷y̷o̷f̷f̷s̷` is reported with its last overlay).
fn grapheme_span(text: &str, start: usize, end: usize) -> (usize, usize) {
    use unicode_segmentation::GraphemeCursor;
    let mut c = GraphemeCursor::new(start, text.len(), true);
    let start = match c.is_boundary(text, 0) {
        Ok(false) => c.prev_boundary(text, 0).ok().flatten().unwrap_or(0),
        _ => start,
    };
    let mut c = GraphemeCursor::new(end, text.len(), true);
    let end = match c.is_boundary(text, 0) {
        Ok(false) => c
            .next_boundary(text, 0)
            .ok()
            .flatten()
            .unwrap_or(text.len()),
        _ => end,
    };
    (start, end)
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
    /// The second reading, with CamelCase hashtags split into their words and hyphenated
    /// words joined (`#BigLayoffs` reads `big layoffs`, `lay-offs` reads `layoffs`); `None`
    /// when the text has neither.
    pub alt: Option<Box<Normalized>>,
}

impl Normalized {
    /// Maps a non-empty byte range of `text` to the original text: from the start of the
    /// first original character that produced a byte of it to the end of the last one
    /// (inside a right-to-left override the order of the original is the reverse of the
    /// order displayed). `None` for an empty or out-of-range span, which has no meaningful
    /// original.
    pub fn original_span(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if end > self.text.len() {
            return None;
        }
        original_span(&self.starts, &self.ends, start, end)
    }
}

/// [`Normalized::original_span`] on the maps alone (`starts` and `ends` have one entry per
/// byte of the normalised text).
fn original_span(
    starts: &[usize],
    ends: &[usize],
    start: usize,
    end: usize,
) -> Option<(usize, usize)> {
    if start >= end || end > starts.len() {
        return None;
    }
    let s = starts[start..end].iter().min().copied()?;
    let e = ends[start..end].iter().max().copied()?;
    Some((s, e))
}

/// The normalisation both sides go through (public for tests and `gate check -v`); see the
/// module documentation for the steps.
pub fn normalize(text: &str) -> Normalized {
    let mut b = Builder::new(true);
    b.run(text);
    let utf8 = |v: Vec<u8>| String::from_utf8(v).expect("built from chars and ASCII");
    let alt = b.has_alt.then(|| {
        Box::new(Normalized {
            text: utf8(std::mem::take(&mut b.alt_text)),
            starts: std::mem::take(&mut b.alt_starts),
            ends: std::mem::take(&mut b.alt_ends),
            alt: None,
        })
    });
    Normalized {
        text: utf8(std::mem::take(&mut b.text)),
        starts: std::mem::take(&mut b.starts),
        ends: std::mem::take(&mut b.ends),
        alt,
    }
}

/// The normalised text alone, without the maps back to the original (and without the
/// second reading): what a policy term is searched for as.
pub fn normalize_text(text: &str) -> String {
    if already_normal(text) {
        return text.to_owned();
    }
    with_scratch(|b| {
        b.run(text);
        String::from_utf8(b.text.clone()).expect("built from chars and ASCII")
    })
}

/// Whether `text` is its own normalised form, cheaply: lower-case ASCII letters and digits
/// in words of two or more, separated by single spaces (no letters to join, nothing to
/// fold, no second reading). Most policy terms are, so a policy of 10,000 terms is read
/// without running the normaliser on each.
fn already_normal(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.split(|&b| b == b' ').all(|word| {
            word.len() >= 2
                && word
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Runs `f` with this thread's untracked builder, whose buffers (and fold cache) are kept
/// between texts so that a post or a term allocates nothing; a fresh one if it is in use.
fn with_scratch<T>(f: impl FnOnce(&mut Builder) -> T) -> T {
    use std::cell::RefCell;
    thread_local! {
        static SCRATCH: RefCell<Builder> = RefCell::new(Builder::new(false));
    }
    SCRATCH.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => f(&mut b),
        Err(_) => f(&mut Builder::new(false)),
    })
}

/// [`with_scratch`] for this thread's tracked builder (maps back to the original kept), used
/// for the few posts with a candidate hit.
fn with_tracked<T>(f: impl FnOnce(&mut Builder) -> T) -> T {
    use std::cell::RefCell;
    thread_local! {
        static TRACKED: RefCell<Builder> = RefCell::new(Builder::new(true));
    }
    TRACKED.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => f(&mut b),
        Err(_) => f(&mut Builder::new(true)),
    })
}

/// One character class for CamelCase splitting of hashtags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Not a letter or digit (or a character that is neither upper nor lower case).
    Other,
    Lower,
    Upper,
    Digit,
}

impl Case {
    fn of(c: char) -> Case {
        if c.is_uppercase() {
            Case::Upper
        } else if c.is_lowercase() {
            Case::Lower
        } else if c.is_numeric() {
            Case::Digit
        } else {
            Case::Other
        }
    }
}

/// The right-to-left override and the characters that end what it covers (its pop, and the
/// paragraph separators).
const RLO: char = '\u{202E}';

/// `text` in display order where a right-to-left override reverses it: each run from
/// U+202E to its U+202C (counting nested embeddings and overrides) or the end of the
/// paragraph is reversed grapheme by grapheme. `map` gets, for every byte of `out`, the
/// span of the original character it came from. Nested left-to-right overrides inside one
/// are reversed with it (rare, and still a reading of the same letters).
fn display_order(text: &str, out: &mut String, map: &mut Vec<(usize, usize)>) {
    use unicode_segmentation::UnicodeSegmentation;
    out.clear();
    map.clear();
    let push = |out: &mut String, map: &mut Vec<(usize, usize)>, at: usize, s: &str| {
        for (i, c) in s.char_indices() {
            out.push(c);
            map.extend(std::iter::repeat_n(
                (at + i, at + i + c.len_utf8()),
                c.len_utf8(),
            ));
        }
    };
    let mut i = 0;
    while let Some(k) = text[i..].find(RLO) {
        let from = i + k;
        push(out, map, i, &text[i..from]);
        let mut depth = 0usize;
        let mut to = text.len();
        for (j, c) in text[from..].char_indices() {
            match c {
                '\u{202A}' | '\u{202B}' | '\u{202D}' | '\u{202E}' => depth += 1,
                '\u{202C}' => {
                    depth -= 1;
                    if depth == 0 {
                        to = from + j;
                        break;
                    }
                }
                '\n' | '\r' | '\u{2029}' | '\u{85}' | '\u{1C}'..='\u{1E}' => {
                    to = from + j;
                    break;
                }
                _ => {}
            }
        }
        let inner = &text[from..to];
        for (gi, g) in inner.grapheme_indices(true).rev() {
            push(out, map, from + gi, g);
        }
        i = to;
    }
    push(out, map, i, &text[i..]);
}

/// Whether the text holds U+202E (UTF-8 E2 80 AE), cheaply: most posts have no E2 byte.
#[inline]
fn has_rlo(bytes: &[u8]) -> bool {
    memchr::memchr_iter(0xE2, bytes).any(|i| bytes[i + 1..].starts_with(&[0x80, 0xAE]))
}

/// What [`Builder::proves_clean`] knows of the words read so far: the bits of the
/// normaliser's state (`Builder`) that decide where its words begin and end, without the
/// text.
#[derive(Default)]
struct Quick {
    /// Words (as written, before letters are joined) begun so far.
    words: usize,
    in_word: bool,
    /// The current word: its shape, its normalised characters (the first one's UTF-8
    /// bytes kept, for a single letter), whether it began with a letter, whether it is a
    /// hashtag.
    shape: words::Shape,
    chars: usize,
    first: ([u8; 4], usize),
    alpha: bool,
    hashtag: bool,
    /// The previous word was a single letter.
    prev_single: bool,
    /// The last word of the normalised text so far, which single letters may still join
    /// (`a/b/c` reads `abc`), and whether letters were joined into it across white space
    /// and across other joiners.
    open: Option<words::Shape>,
    open_ws: bool,
    open_punct: bool,
    /// The key of the normalised word before `open`, still to be tested with it (the
    /// phrase filter needs both).
    done: Option<u64>,
    /// The separator run since the last word: no `OTHER` character in it (after a single
    /// letter), white space only, its characters, the last one a hyphen, the last one `#`.
    sep_joinable: bool,
    sep_ws: bool,
    sep_chars: usize,
    sep_hyphen: bool,
    sep_hash: bool,
    /// This word follows a single letter across joiners only.
    pending: bool,
}

impl Quick {
    /// A word begins; false when the text needs the normaliser (a hyphenated word has a
    /// second reading).
    #[inline]
    fn begin(&mut self, alpha: bool) -> bool {
        if self.words > 0 {
            if self.sep_chars == 1 && self.sep_hyphen {
                return false;
            }
            self.pending = self.prev_single && self.sep_joinable;
        }
        self.hashtag = self.sep_hash;
        self.words += 1;
        self.in_word = true;
        self.chars = 0;
        self.alpha = alpha;
        self.shape = words::Shape::default();
        true
    }

    /// The first character of the current word, normalised.
    #[inline]
    fn first_char(&mut self, bytes: &[u8]) {
        if self.chars == 0 {
            let mut first = [0; 4];
            first[..bytes.len()].copy_from_slice(bytes);
            self.first = (first, bytes.len());
        }
    }

    /// The current word ends; false when the text needs the normaliser: a word before may
    /// begin a term, or single letters are joined across both white space and other
    /// joiners (`a.b c.d` reads `ab cd`: the rule of `Builder::join_positions`).
    #[inline(always)]
    fn end(&mut self, set: &words::WordSet) -> bool {
        let single = self.chars == 1 && self.alpha;
        if self.pending && single {
            // Joined to the letters before it (the normaliser removes the space).
            if self.sep_ws {
                self.open_ws = true;
            } else {
                self.open_punct = true;
            }
            if self.open_ws && self.open_punct {
                return false;
            }
            let open = self.open.as_mut().expect("a single letter came before");
            for &b in &self.first.0[..self.first.1] {
                open.push(b);
            }
        } else {
            if let Some(open) = self.open {
                let key = open.key();
                if let Some(done) = self.done
                    && set.may_begin(done, Some(key))
                {
                    return false;
                }
                self.done = Some(key);
            }
            self.open = Some(self.shape);
            self.open_ws = false;
            self.open_punct = false;
        }
        self.prev_single = single;
        self.in_word = false;
        self.sep_joinable = single;
        self.sep_ws = true;
        self.sep_chars = 0;
        self.sep_hyphen = false;
        self.sep_hash = false;
        true
    }

    /// A separator character of class `class` (as `Builder::sep_char`).
    #[inline]
    fn sep(&mut self, c: char, class: u8, set: &words::WordSet) -> bool {
        if self.in_word && !self.end(set) {
            return false;
        }
        self.sep_hash = c == '#';
        if self.words > 0 {
            self.sep_chars += 1;
            self.sep_hyphen = matches!(c, '-' | '\u{2010}' | '\u{2011}');
            if class != SPACE {
                self.sep_ws = false;
            }
            if class == OTHER {
                self.sep_joinable = false;
            }
        }
        true
    }

    /// The text ends; whether no word of it may begin a term.
    fn finish(&mut self, set: &words::WordSet) -> bool {
        if self.in_word && !self.end(set) {
            return false;
        }
        let Some(open) = self.open else {
            return true;
        };
        let key = open.key();
        !(self.done.is_some_and(|done| set.may_begin(done, Some(key))) || set.may_begin(key, None))
    }
}

impl Builder {
    /// Proves, in one pass over the original bytes and without writing anything, that no
    /// word of the normalised text (in either reading) can begin a term of `set`, so the
    /// text needs no normalised copy and no map. False when it cannot: a word passes the
    /// filters of `set`, or the text has what this pass leaves to the normaliser (a
    /// hyphenated word or a hashtag that could be split, i.e. a second reading; single
    /// letters joined across both white space and other joiners; a right-to-left override;
    /// a character that folds to letters and separators at once). Otherwise it reads the
    /// normaliser's words exactly: ASCII runs in place (lower-cased only where the shape
    /// needs a byte), a non-ASCII character through the same fold cache (so `café`,
    /// `ｌａｙｏｆｆｓ` and `lay\u{200B}offs` are the words the normaliser makes of them), and
    /// letter-spelled words joined as it joins them (`a/b/c` is `abc`). The property test
    /// `prefilter_agrees_with_the_normaliser` pins it.
    fn proves_clean(&mut self, text: &str, set: &words::WordSet) -> bool {
        let bytes = text.as_bytes();
        let mut q = Quick::default();
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            let class = ASCII_CLASS[byte as usize];
            if class == ALNUM {
                let mut run = i;
                while let Some(chunk) = bytes.get(run..run + 8) {
                    let (_, n) = alnum_prefix(chunk.try_into().expect("8 bytes"));
                    run += n;
                    if n < 8 {
                        break;
                    }
                }
                if run + 8 > bytes.len() {
                    while bytes.get(run).is_some_and(|&b| ASCII_LOWER[b as usize] != 0) {
                        run += 1;
                    }
                }
                let word = &bytes[i..run];
                if !q.in_word && !q.begin(byte.is_ascii_alphabetic()) {
                    return false;
                }
                // A hashtag is split where its case changes or a digit starts or ends
                // (`#BigLayoffs2026`): that is the second reading.
                if q.hashtag
                    && word.iter().enumerate().any(|(k, &c)| {
                        c.is_ascii_digit() || (c.is_ascii_uppercase() && (k > 0 || q.chars > 0))
                    })
                {
                    return false;
                }
                q.first_char(&[ASCII_LOWER[byte as usize]]);
                q.shape.extend(word, |b| ASCII_LOWER[b as usize]);
                q.chars += word.len();
                i = run;
                // The commonest separator, one space between two words: `Quick::sep` for it,
                // without the dispatch.
                if bytes.get(run) == Some(&b' ')
                    && bytes
                        .get(run + 1)
                        .is_some_and(|&b| ASCII_CLASS[b as usize] == ALNUM)
                {
                    if !q.end(set) {
                        return false;
                    }
                    q.sep_chars = 1;
                    i = run + 1;
                }
            } else if class != HIGH {
                if !q.sep(byte as char, class, set) {
                    return false;
                }
                i += 1;
            } else {
                let c = text[i..].chars().next().expect("i is on a char boundary");
                if c == RLO {
                    return false;
                }
                let folded = self.folded(c);
                if folded.n == Folded::LONG {
                    return false;
                }
                for k in 0..folded.n as usize {
                    let d = folded.out[k];
                    if folded.alnum & (1 << k) != 0 {
                        if !q.in_word && !q.begin(d.is_alphabetic()) {
                            return false;
                        }
                        if q.hashtag {
                            return false;
                        }
                        let mut buf = [0; 4];
                        let utf8 = d.encode_utf8(&mut buf).as_bytes();
                        q.first_char(utf8);
                        for &b in utf8 {
                            q.shape.push(b);
                        }
                        q.chars += 1;
                    } else if !q.sep(d, sep_class(d), set) {
                        return false;
                    }
                }
                i += c.len_utf8();
            }
        }
        q.finish(set)
    }
}

/// Runs the normalisation of one text into `b` (both readings; maps when `b.track`).
impl Builder {
    fn run(&mut self, text: &str) {
        self.reset();
        if has_rlo(text.as_bytes()) {
            let mut display = std::mem::take(&mut self.display);
            let mut map = std::mem::take(&mut self.display_map);
            display_order(text, &mut display, &mut map);
            self.feed(&display);
            self.finish();
            if self.track {
                for v in [&mut self.starts, &mut self.alt_starts] {
                    for s in v.iter_mut() {
                        *s = map[*s].0;
                    }
                }
                for v in [&mut self.ends, &mut self.alt_ends] {
                    for e in v.iter_mut() {
                        *e = map[*e - 1].1;
                    }
                }
            }
            self.display = display;
            self.display_map = map;
        } else {
            self.feed(text);
            self.finish();
        }
    }

    fn feed(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            let class = ASCII_CLASS[byte as usize];
            if class == ALNUM {
                // Fast path: a whole run of ASCII letters and digits at once, lower-cased as
                // it is copied.
                if !self.in_word {
                    self.begin_word(byte.is_ascii_alphabetic());
                }
                let from = self.text.len();
                let mut run = i;
                // Eight bytes at a time while they are all letters and digits, then the
                // letters and digits that begin the next eight.
                while let Some(chunk) = bytes.get(run..run + 8) {
                    let (lower, n) = alnum_prefix(chunk.try_into().expect("8 bytes"));
                    self.text.extend_from_slice(&lower);
                    self.text.truncate(self.text.len() - 8 + n);
                    run += n;
                    if n < 8 {
                        break;
                    }
                }
                if run + 8 > bytes.len() {
                    while let Some(&b) = bytes.get(run) {
                        let lower = ASCII_LOWER[b as usize];
                        if lower == 0 {
                            break;
                        }
                        self.text.push(lower);
                        run += 1;
                    }
                }
                self.ascii_word(&bytes[i..run], from, i);
                i = run;
            } else if class != HIGH {
                self.sep_char(byte as char, class, i, i + 1);
                i += 1;
            } else {
                let c = text[i..].chars().next().expect("i is on a char boundary");
                let end = i + c.len_utf8();
                let folded = self.folded(c);
                if folded.n == Folded::LONG {
                    // Longer than the cache holds (such as U+FDFA): the slow way.
                    let case = Case::of(c);
                    let mut first = true;
                    fold_char(c, &mut |d| {
                        if d.is_alphanumeric() {
                            self.word_char(d, i, end, if first { case } else { Case::Other });
                            first = false;
                        } else {
                            self.sep_char(d, sep_class(d), i, end);
                        }
                    });
                } else {
                    let mut case = folded.case;
                    for k in 0..folded.n as usize {
                        let d = folded.out[k];
                        if folded.alnum & (1 << k) != 0 {
                            self.word_char(d, i, end, case);
                            case = Case::Other;
                        } else {
                            self.sep_char(d, sep_class(d), i, end);
                        }
                    }
                }
                i = end;
            }
        }
    }

    /// The folding of one non-ASCII character (`fold_char`), through a small direct-mapped
    /// cache kept with the builder: posts repeat the same few non-ASCII characters (accents,
    /// quotes, emoji), and folding one costs several table lookups. Its size is fixed, so
    /// hostile input cannot grow it.
    #[inline]
    fn folded(&mut self, c: char) -> Folded {
        const SLOTS: usize = 1 << 10;
        if self.fold_cache.is_empty() {
            self.fold_cache = vec![Folded::EMPTY; SLOTS];
        }
        let slot = ((c as u32).wrapping_mul(0x9E37_79B1) >> 22) as usize;
        let cached = self.fold_cache[slot];
        if cached.key == c as u32 {
            return cached;
        }
        let mut f = Folded {
            key: c as u32,
            case: Case::of(c),
            ..Folded::EMPTY
        };
        let mut n = 0usize;
        fold_char(c, &mut |d| {
            if n < Folded::INLINE {
                f.out[n] = d;
                if d.is_alphanumeric() {
                    f.alnum |= 1 << n;
                }
            }
            n += 1;
        });
        f.n = if n > Folded::INLINE {
            Folded::LONG
        } else {
            n as u8
        };
        self.fold_cache[slot] = f;
        f
    }
}

/// One cached folding (see `Builder::folded`).
#[derive(Debug, Clone, Copy)]
struct Folded {
    /// The character folded, or `u32::MAX` for an empty slot.
    key: u32,
    /// Its case, for CamelCase splitting.
    case: Case,
    /// How many characters it folds to, or `LONG` for more than `INLINE`.
    n: u8,
    /// Bit k: `out[k]` is alphanumeric.
    alnum: u8,
    out: [char; Folded::INLINE],
}

impl Folded {
    const INLINE: usize = 4;
    const LONG: u8 = u8::MAX;
    const EMPTY: Folded = Folded {
        key: u32::MAX,
        case: Case::Other,
        n: 0,
        alnum: 0,
        out: ['\0'; Folded::INLINE],
    };
}

/// Byte classes of the ASCII fast path (`ASCII_CLASS`): how a byte of the text is treated,
/// without any Unicode lookup. Non-ASCII bytes are `HIGH` (decoded and folded).
const ALNUM: u8 = 0;
/// A separator that may join single letters (`.` `-` `_` `*` `/` `|` `\` `~` `+`).
const JOIN: u8 = 1;
/// White space (a joiner too).
const SPACE: u8 = 2;
/// Any other separator (punctuation, `#`, control characters).
const OTHER: u8 = 3;
const HIGH: u8 = 4;

static ASCII_CLASS: [u8; 256] = {
    let mut t = [HIGH; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            ALNUM
        } else if matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') {
            SPACE
        } else if matches!(
            c,
            b'.' | b'-' | b'_' | b'*' | b'/' | b'|' | b'\\' | b'~' | b'+'
        ) {
            JOIN
        } else {
            OTHER
        };
        b += 1;
    }
    t
};

/// An ASCII letter or digit, lower-cased; 0 for every other byte.
static ASCII_LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Eight bytes lower-cased (ASCII letters only; other bytes are garbage) and how many of
/// them, from the first, are ASCII letters or digits: the fast path of `Builder::feed`, with
/// byte-wise range tests done on a whole `u64` (each byte is first cut to 7 bits, so no
/// addition carries into the next byte).
#[inline]
fn alnum_prefix(chunk: [u8; 8]) -> ([u8; 8], usize) {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn splat(b: u8) -> u64 {
        0x0101_0101_0101_0101 * b as u64
    }
    // The high bit of each byte of `x` (bytes below 0x80) that lies in lo..=hi.
    let within = |x: u64, lo: u8, hi: u8| {
        x.wrapping_add(splat(0x80 - lo)) & !x.wrapping_add(splat(0x7F - hi)) & HIGH
    };
    let w = u64::from_le_bytes(chunk);
    let w7 = w & !HIGH;
    let lower = w7 | (within(w7, b'A', b'Z') >> 2);
    let ok = (within(lower, b'a', b'z') | within(lower, b'0', b'9')) & !w;
    let n = ((!ok & HIGH).trailing_zeros() / 8) as usize;
    (lower.to_le_bytes(), n)
}

/// The class of a separator character (one that is not alphanumeric).
#[inline]
fn sep_class(c: char) -> u8 {
    if c.is_ascii() {
        ASCII_CLASS[c as usize]
    } else if c.is_whitespace() {
        SPACE
    } else if is_joiner(c) {
        JOIN
    } else {
        OTHER
    }
}

/// Steps 1-5 of the normalisation for one non-ASCII character. A character that imitates
/// a plain letter on its own (a small capital, a stroke letter, `⒧`, `🅛`, a regional
/// indicator, Cyrillic `К`) becomes it before NFKC can turn it into something else (`⒧`
/// would be `(l)`); the table only lists characters for which that agrees with the steps.
fn fold_char(c: char, out: &mut impl FnMut(char)) {
    if let Some(l) = lookalike_letter(c) {
        out(l);
        return;
    }
    decompose_compatible(c, |k| {
        for u in k.to_uppercase() {
            for l in u.to_lowercase() {
                decompose_canonical(l, |d| {
                    if !is_invisible(d) && !is_dropped_mark(d) {
                        out(lookalike(d));
                    }
                });
            }
        }
    });
}

/// The plain letter a non-ASCII character imitates, from the generated table.
fn lookalike_letter(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    tables::LOOKALIKE
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .map(|i| tables::LOOKALIKE[i].1 as char)
}

fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    ranges
        .binary_search_by(|&(a, b)| {
            if b < c {
                std::cmp::Ordering::Less
            } else if a > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Default-ignorable characters and every format character (general category Cf, which
/// includes U+FFF9..U+FFFB): none of them changes what a word says.
fn is_invisible(c: char) -> bool {
    !c.is_ascii() && in_ranges(c, tables::INVISIBLE)
}

/// Non-spacing (Mn) and enclosing (Me) marks. Spacing marks (Mc) carry meaning in many
/// scripts, so only these are treated as diacritics; an enclosing circle (`l⃝`) says no
/// more than an accent does.
fn is_dropped_mark(c: char) -> bool {
    static MARK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\A[\p{Mn}\p{Me}]\z").expect("valid Unicode class"));
    is_combining_mark(c) && MARK.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Step 5: characters of other scripts (and Latin letterforms) that imitate a plain letter
/// become it; plain ASCII is never rewritten.
fn lookalike(c: char) -> char {
    lookalike_letter(c).unwrap_or(c)
}

/// Separator characters that may spell a word letter by letter.
fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '*' | '/' | '|' | '\\' | '~' | '+')
        || c.is_whitespace()
        || (!c.is_ascii() && in_ranges(c, tables::JOINER))
}

/// A candidate place to join two single-letter words: the space before word `word`.
#[derive(Debug, Clone, Copy)]
struct Join {
    space: usize,
    word: usize,
    /// The separator was whitespace only.
    ws: bool,
}

/// Incremental builder of a `Normalized`, fed one normalised character at a time. Its
/// buffers are kept between texts (see `Matcher::find`), so a post allocates nothing.
#[derive(Default)]
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
    /// Whether the current separator is whitespace only.
    sep_ws: bool,
    /// Characters in the current separator, and whether it is exactly one hyphen.
    sep_chars: usize,
    sep_hyphen: bool,
    /// The last separator character was `#` (the next word is a hashtag).
    sep_hash: bool,
    /// Join to record if the current word turns out to be a single letter.
    pending: Option<Join>,
    joins: Vec<Join>,
    /// Spaces that stand for a lone hyphen between two words (removed in the second reading).
    hyphens: Vec<usize>,
    /// CamelCase state of the current hashtag word.
    hashtag: bool,
    case_prev: Option<Case>,
    upper_run: usize,
    last_upper_at: usize,
    /// Positions inside hashtag words where the second reading inserts a space.
    splits: Vec<usize>,
    /// Scratch: positions to remove.
    remove: Vec<usize>,
    alt_remove: Vec<usize>,
    /// The second reading (valid when `has_alt`).
    has_alt: bool,
    alt_text: Vec<u8>,
    alt_starts: Vec<usize>,
    alt_ends: Vec<usize>,
    /// Scratch for right-to-left overrides.
    display: String,
    display_map: Vec<(usize, usize)>,
    /// The fold cache (see `Builder::folded`), allocated at the first non-ASCII character.
    fold_cache: Vec<Folded>,
    /// Scratch for removing positions.
    tmp_text: Vec<u8>,
    tmp_starts: Vec<usize>,
    tmp_ends: Vec<usize>,
}

impl Builder {
    fn new(track: bool) -> Builder {
        Builder {
            track,
            ..Builder::default()
        }
    }

    fn reset(&mut self) {
        self.text.clear();
        self.starts.clear();
        self.ends.clear();
        self.words = 0;
        self.in_word = false;
        self.word_chars = 0;
        self.word_alpha = false;
        self.prev_single = false;
        self.sep_start = usize::MAX;
        self.sep_end = 0;
        self.sep_joinable = false;
        self.sep_ws = true;
        self.sep_chars = 0;
        self.sep_hyphen = false;
        self.sep_hash = false;
        self.pending = None;
        self.joins.clear();
        self.hyphens.clear();
        self.hashtag = false;
        self.case_prev = None;
        self.splits.clear();
        self.has_alt = false;
        self.alt_text.clear();
        self.alt_starts.clear();
        self.alt_ends.clear();
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
                    ws: self.sep_ws,
                });
            }
            if self.sep_chars == 1 && self.sep_hyphen {
                self.hyphens.push(space);
            }
        }
        self.hashtag = self.sep_hash;
        self.case_prev = None;
        self.upper_run = 0;
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
        self.sep_ws = true;
        self.sep_chars = 0;
        self.sep_hyphen = false;
        self.sep_hash = false;
    }

    /// CamelCase inside a hashtag: the next character, of case `case`, starts at `at`.
    fn note_case(&mut self, case: Case, at: usize) {
        if case == Case::Other {
            return;
        }
        use Case::*;
        match (self.case_prev, case) {
            (Some(Lower), Upper) | (Some(Lower | Upper), Digit) | (Some(Digit), Lower | Upper) => {
                self.splits.push(at)
            }
            (Some(Upper), Lower) if self.upper_run >= 2 => self.splits.push(self.last_upper_at),
            _ => {}
        }
        if case == Upper {
            self.upper_run = if self.case_prev == Some(Upper) {
                self.upper_run + 1
            } else {
                1
            };
            self.last_upper_at = at;
        } else {
            self.upper_run = 0;
        }
        self.case_prev = Some(case);
    }

    /// A run of ASCII letters and digits starting at original offset `pos`, already copied
    /// (lower-cased) to `text[from..]` by `feed`.
    #[inline]
    fn ascii_word(&mut self, run: &[u8], from: usize, pos: usize) {
        self.word_chars += run.len();
        if self.hashtag {
            for (k, &c) in run.iter().enumerate() {
                let case = if c.is_ascii_uppercase() {
                    Case::Upper
                } else if c.is_ascii_lowercase() {
                    Case::Lower
                } else {
                    Case::Digit
                };
                self.note_case(case, from + k);
            }
        }
        if self.track {
            self.starts.extend(pos..pos + run.len());
            self.ends.extend(pos + 1..pos + run.len() + 1);
        }
    }

    fn word_char(&mut self, c: char, start: usize, end: usize, case: Case) {
        if !self.in_word {
            self.begin_word(c.is_alphabetic());
        }
        if self.hashtag {
            self.note_case(case, self.text.len());
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

    /// A separator character `c` of class `class` (`sep_class`).
    #[inline]
    fn sep_char(&mut self, c: char, class: u8, start: usize, end: usize) {
        if self.in_word {
            self.end_word();
        }
        self.sep_hash = c == '#';
        if self.words == 0 {
            return;
        }
        if self.sep_start == usize::MAX {
            self.sep_start = start;
        }
        self.sep_end = end;
        self.sep_chars += 1;
        self.sep_hyphen = matches!(c, '-' | '\u{2010}' | '\u{2011}');
        if class != SPACE {
            self.sep_ws = false;
        }
        if class == OTHER {
            self.sep_joinable = false;
        }
    }

    fn finish(&mut self) {
        if self.in_word {
            self.end_word();
        }
        self.join_positions();
        if !self.hyphens.is_empty() || !self.splits.is_empty() {
            // The second reading: joins as in the first, hyphens removed, splits inserted.
            self.has_alt = true;
            self.alt_remove.clear();
            self.alt_remove.extend_from_slice(&self.remove);
            self.alt_remove.extend_from_slice(&self.hyphens);
            self.alt_remove.sort_unstable();
            self.alt_remove.dedup();
            self.splits.sort_unstable();
            self.splits.dedup();
            splice(
                (&self.text, &self.starts, &self.ends),
                self.track,
                &self.alt_remove,
                &self.splits,
                (&mut self.alt_text, &mut self.alt_starts, &mut self.alt_ends),
            );
        }
        if !self.remove.is_empty() {
            splice(
                (&self.text, &self.starts, &self.ends),
                self.track,
                &self.remove,
                &[],
                (&mut self.tmp_text, &mut self.tmp_starts, &mut self.tmp_ends),
            );
            std::mem::swap(&mut self.text, &mut self.tmp_text);
            std::mem::swap(&mut self.starts, &mut self.tmp_starts);
            std::mem::swap(&mut self.ends, &mut self.tmp_ends);
        }
    }

    /// The spaces inside letter-spelled words, into `remove` (see the module docs for the
    /// rule): runs of single letters joined by separators; a lone whitespace separator
    /// beside a punctuation one splits the run there (`I f.u.c.k` reads `i fuck`).
    fn join_positions(&mut self) {
        self.remove.clear();
        let joins = &self.joins;
        let mut a = 0;
        while a < joins.len() {
            let mut b = a + 1;
            while b < joins.len() && joins[b - 1].word + 1 == joins[b].word {
                b += 1;
            }
            for k in a..b {
                let lone_ws =
                    joins[k].ws && (k == a || !joins[k - 1].ws) && (k + 1 == b || !joins[k + 1].ws);
                let beside_punct = (k > a && !joins[k - 1].ws) || (k + 1 < b && !joins[k + 1].ws);
                if !(lone_ws && beside_punct) {
                    self.remove.push(joins[k].space);
                }
            }
            a = b;
        }
    }
}

/// Copies `src` into `dst` without the bytes at the sorted positions `remove` and with a
/// space inserted before each of the sorted positions `insert` (an inserted space maps to
/// the original position of the character after it). Removing or inserting ASCII spaces
/// keeps the text valid UTF-8.
fn splice(
    src: (&[u8], &[usize], &[usize]),
    track: bool,
    remove: &[usize],
    insert: &[usize],
    dst: (&mut Vec<u8>, &mut Vec<usize>, &mut Vec<usize>),
) {
    let (text, starts, ends) = src;
    let (out, out_starts, out_ends) = dst;
    out.clear();
    out_starts.clear();
    out_ends.clear();
    let (mut r, mut n) = (0, 0);
    for (i, &byte) in text.iter().enumerate() {
        if n < insert.len() && insert[n] == i {
            n += 1;
            out.push(b' ');
            if track {
                out_starts.push(starts[i]);
                out_ends.push(starts[i]);
            }
        }
        if r < remove.len() && remove[r] == i {
            r += 1;
            continue;
        }
        out.push(byte);
        if track {
            out_starts.push(starts[i]);
            out_ends.push(ends[i]);
        }
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

    /// The eight-byte fast path agrees with the byte table for every byte value at every
    /// position, beside letters, digits and the bytes next to the ranges' ends.
    #[test]
    fn alnum_prefix_agrees_with_the_byte_table() {
        let scalar = |chunk: [u8; 8]| {
            let n = chunk
                .iter()
                .position(|&b| ASCII_LOWER[b as usize] == 0)
                .unwrap_or(8);
            (
                chunk[..n]
                    .iter()
                    .map(|&b| ASCII_LOWER[b as usize])
                    .collect::<Vec<u8>>(),
                n,
            )
        };
        let fillers = [
            b'a', b'Z', b'0', b'9', b'z', b'A', b'@', b'[', b'`', b'{', b'/', b':',
        ];
        for filler in fillers {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut chunk = [filler; 8];
                    chunk[at] = b;
                    let (lower, n) = alnum_prefix(chunk);
                    let (want, want_n) = scalar(chunk);
                    assert_eq!(n, want_n, "{chunk:?}");
                    assert_eq!(&lower[..n], &want[..], "{chunk:?}");
                }
            }
        }
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

    /// Every evasion class of SPEC §3, each with the exact original span it must report.
    /// (class, terms, text, expected (term, original text of the span) pairs)
    #[test]
    fn evasion_classes() {
        type Row<'a> = (&'a str, &'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);
        let rows: &[Row] = &[
            ("plain", &["kill"], "Big kill today", &[("kill", "kill")]),
            (
                "cyrillic capital ka",
                &["kill"],
                "Big Кill today",
                &[("kill", "Кill")],
            ),
            (
                "cyrillic small ka",
                &["kill"],
                "big кill today",
                &[("kill", "кill")],
            ),
            (
                "greek capital kappa",
                &["kill"],
                "Big Κill",
                &[("kill", "Κill")],
            ),
            (
                "greek small kappa",
                &["kill"],
                "big κill",
                &[("kill", "κill")],
            ),
            ("greek capital upsilon", &["yes"], "Υes", &[("yes", "Υes")]),
            ("greek digamma", &["fire"], "Ϝire them", &[("fire", "Ϝire")]),
            ("greek lunate sigma", &["cuts"], "ϲuts", &[("cuts", "ϲuts")]),
            ("cherokee", &["game"], "Ꮐame", &[("game", "Ꮐame")]),
            ("coptic", &["bots"], "ⲃots", &[("bots", "ⲃots")]),
            ("armenian", &["hush"], "hուsh", &[]), // ու is two letters, not one
            ("mixed cyrillic", &["scam"], "ѕсаm", &[("scam", "ѕсаm")]),
            (
                "fullwidth",
                &["layoffs"],
                "ＬＡＹＯＦＦＳ",
                &[("layoffs", "ＬＡＹＯＦＦＳ")],
            ),
            (
                "small capitals",
                &["layoffs"],
                "ʟᴀʏᴏꜰꜰꜱ",
                &[("layoffs", "ʟᴀʏᴏꜰꜰꜱ")],
            ),
            ("stroke letters", &["lodh"], "łøđħ", &[("lodh", "łøđħ")]),
            ("hook letters", &["fas"], "ƒɑƽ", &[("fas", "ƒɑƽ")]),
            ("parenthesized", &["lay"], "⒧⒜⒴ off", &[("lay", "⒧⒜⒴")]),
            ("negative circled", &["lay"], "🅛🅐🅨!", &[("lay", "🅛🅐🅨")]),
            ("negative squared", &["lay"], "🅻🅰🆈", &[("lay", "🅻🅰🆈")]),
            ("circled", &["lay"], "ⓛⓐⓨ", &[("lay", "ⓛⓐⓨ")]),
            ("squared", &["lay"], "🄻🄰🅈", &[("lay", "🄻🄰🅈")]),
            (
                "regional indicators",
                &["layoffs"],
                "🇱🇦🇾🇴🇫🇫🇸",
                &[("layoffs", "🇱🇦🇾🇴🇫🇫🇸")],
            ),
            (
                "enclosing circle",
                &["lay"],
                "l\u{20DD}a\u{20DD}y\u{20DD}",
                &[("lay", "l\u{20DD}a\u{20DD}y\u{20DD}")],
            ),
            (
                "overlay marks, span keeps the last one",
                &["layoffs"],
                "l̷a̷y̷o̷f̷f̷s̷ now",
                &[("layoffs", "l̷a̷y̷o̷f̷f̷s̷")],
            ),
            ("slashes", &["lay"], "l/a/y", &[("lay", "l/a/y")]),
            ("bars", &["lay"], "l | a | y", &[("lay", "l | a | y")]),
            ("emoji between", &["lay"], "l🔥a🔥y", &[("lay", "l🔥a🔥y")]),
            (
                "braille blank",
                &["lay"],
                "l\u{2800}a\u{2800}y",
                &[("lay", "l\u{2800}a\u{2800}y")],
            ),
            (
                "mixed separators",
                &["layoffs"],
                "l.a-y_o*f f s",
                &[("layoffs", "l.a-y_o*f f s")],
            ),
            ("dots", &["fuck"], "I f.u.c.k", &[("fuck", "f.u.c.k")]),
            (
                "interlinear annotation",
                &["layoffs"],
                "lay\u{FFF9}off\u{FFFA}s\u{FFFB}",
                &[("layoffs", "lay\u{FFF9}off\u{FFFA}s")],
            ),
            (
                "arabic letter mark",
                &["layoffs"],
                "lay\u{61C}offs",
                &[("layoffs", "lay\u{61C}offs")],
            ),
            (
                "word joiner",
                &["layoffs"],
                "lay\u{2060}offs",
                &[("layoffs", "lay\u{2060}offs")],
            ),
            (
                "tag characters",
                &["layoffs"],
                "lay\u{E0041}offs",
                &[("layoffs", "lay\u{E0041}offs")],
            ),
            (
                "right-to-left override",
                &["layoffs"],
                "big \u{202E}sffoyal\u{202C} today",
                &[("layoffs", "sffoyal")],
            ),
            (
                "right-to-left override to the end of the line",
                &["kill"],
                "ok \u{202E}llik\nnext",
                &[("kill", "llik")],
            ),
            (
                "camelcase hashtag",
                &["layoffs"],
                "#BigLayoffs",
                &[("layoffs", "Layoffs")],
            ),
            (
                "camelcase hashtag, phrase",
                &["big layoffs"],
                "#BigLayoffs2026",
                &[("big layoffs", "BigLayoffs")],
            ),
            (
                "acronym in hashtag",
                &["layoffs"],
                "#USLayoffs",
                &[("layoffs", "Layoffs")],
            ),
            (
                "hashtag as one word too",
                &["biglayoffs"],
                "#BigLayoffs",
                &[("biglayoffs", "BigLayoffs")],
            ),
            (
                "hyphenated",
                &["layoffs"],
                "lay-offs",
                &[("layoffs", "lay-offs")],
            ),
            (
                "hyphenated, as words too",
                &["lay offs"],
                "lay-offs",
                &[("lay offs", "lay-offs")],
            ),
            // What must stay clean.
            ("burn is not bum", &["bum"], "burn it", &[]),
            ("modern is not modem", &["modem"], "a modern design", &[]),
            ("class", &["ass"], "first class assistant", &[]),
            ("scunthorpe", &["cunt"], "Scunthorpe United", &[]),
            (
                "camelcase only in hashtags",
                &["layoffs"],
                "BigLayoffs",
                &[],
            ),
            (
                "spaced hyphen is a separator",
                &["layoffs"],
                "lay - offs",
                &[],
            ),
            ("plain cyrillic word", &["kill"], "Привет, как дела?", &[]),
        ];
        for (class, terms, text, want) in rows {
            let m = deny(terms);
            let got = spans(&m, text);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "{class}: terms {terms:?} text {text:?}");
        }
    }

    /// A realistic deny list: profanity in several languages, slurs, and words a company
    /// keeps out of its posts; `kill` with `kill switch` allowed, `cum` with `cum laude`.
    const REALISTIC_DENY: &[&str] = &[
        "ass",
        "arse",
        "asshole",
        "bastard",
        "bitch",
        "bollocks",
        "boob",
        "boobs",
        "cock",
        "crap",
        "cum",
        "cunt",
        "damn",
        "dick",
        "dildo",
        "fag",
        "faggot",
        "fuck",
        "fucking",
        "motherfucker",
        "jizz",
        "kill",
        "nigger",
        "piss",
        "porn",
        "prick",
        "pussy",
        "retard",
        "shit",
        "slut",
        "tit",
        "tits",
        "twat",
        "wank",
        "wanker",
        "whore",
        "scheiße",
        "arschloch",
        "fotze",
        "merde",
        "putain",
        "connard",
        "salope",
        "mierda",
        "puta",
        "coño",
        "cabrón",
        "cazzo",
        "stronzo",
        "блядь",
        "хуй",
        "пизда",
        "сука",
        "kurwa",
        "layoffs",
        "mass layoffs",
        "insider trading",
        "bankruptcy",
        "project falcon",
    ];

    /// The false-positive corpus (src/core/terms/false_positives.txt, built by
    /// tools/gen_fp_corpus.py): real sentences in twelve languages, rich in words that
    /// contain a banned term. Not one may produce a finding.
    #[test]
    fn false_positive_corpus_is_clean() {
        let corpus = include_str!("false_positives.txt");
        let lines: Vec<&str> = corpus.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines.len() >= 2000, "{} sentences", lines.len());
        let langs: std::collections::BTreeSet<&str> =
            lines.iter().filter_map(|l| l.split('\t').next()).collect();
        for lang in ["en", "de", "fr", "es", "ru", "el", "ja"] {
            assert!(langs.contains(lang), "no {lang} sentences");
        }
        let allow = s(&["kill switch", "cum laude"]);
        let m = Matcher::new(&s(REALISTIC_DENY), &[], &allow, &[]).unwrap();
        let mut found = Vec::new();
        for line in &lines {
            let (_, text) = line.split_once('\t').expect("LANG<TAB>sentence");
            for h in m.find(text) {
                found.push(format!(
                    "{:?} in {text:?} ({:?})",
                    h.term,
                    &text[h.start..h.end]
                ));
            }
        }
        assert!(
            found.is_empty(),
            "{} findings:\n{}",
            found.len(),
            found.join("\n")
        );
        // The corpus does exercise the matcher: the same words, planted, are found.
        let planted = "what an ass, #MassLayoffs and f.u.c.k";
        assert_eq!(m.find(planted).len(), 4, "{:?}", m.find(planted));
    }

    /// `Dr. A.S.S. Murthy` is flagged: initials and a letter-spelled evasion are the same
    /// characters (`A.S.S.` is `a.s.s`), and a miss costs more than a review. An allow term
    /// with the name lets it through.
    /// A word's shape is the same whether it is read at once, byte by byte, or in runs.
    #[test]
    fn shapes_agree_however_read() {
        for word in ["a", "ab", "abc", "abcd", "layoffs", "caf\u{e9}", "日本語", "x1"] {
            let bytes = word.as_bytes();
            let whole = words::Shape::of(bytes);
            let mut one = words::Shape::default();
            for &b in bytes {
                one.push(b);
            }
            assert_eq!(one, whole, "{word:?} byte by byte");
            for cut in 0..=bytes.len() {
                let mut two = words::Shape::default();
                two.extend(&bytes[..cut], |b| b);
                two.extend(&bytes[cut..], |b| b);
                assert_eq!(two, whole, "{word:?} cut at {cut}");
            }
            let mut upper = words::Shape::default();
            upper.extend(word.to_ascii_uppercase().as_bytes(), |b| b.to_ascii_lowercase());
            assert_eq!(upper, whole, "{word:?} lower-cased as read");
        }
        assert_ne!(words::Shape::of(b"ab"), words::Shape::of(b"abab"));
        assert_ne!(words::Shape::of(b"layoffs"), words::Shape::of(b"layofs"));
    }

    /// The prefilter clears ordinary posts (so most posts skip the normaliser) and never
    /// an evasion: each of these reads as a term, or has what the prefilter leaves to the
    /// normaliser (joined letters, the second reading).
    #[test]
    fn prefilter_clears_ordinary_posts_only() {
        let m = deny(&["layoffs", "big layoffs", "cafe", "日本"]);
        let clean = |text: &str| with_scratch(|b| b.proves_clean(text, &m.words));
        for text in [
            "",
            "Hello world, a new release today! #launch @team https://example.com/path",
            "Crème brûlée, naïve Zürich 日本語 Привет “quoted” don’t 🔥👩‍💻🇫🇷 ❤️ — fin",
            "big news: lay off nobody, offs the record, I am here",
            "a cat, a dog. I said: x",
            "layoffsx xlayoffs bigger layoff #layoffsish",
        ] {
            assert!(clean(text), "{text:?} should need no normalisation");
        }
        for text in [
            "layoffs",
            "LAYOFFS!",
            "the Big  Layoffs",
            "l.a.y.o.f.f.s",
            "l a y o f f s",
            "#BigLayoffs",
            "#bigLayoffs",
            "#layoffs2026",
            "lay-offs",
            "lay\u{2010}offs",
            "ｌａｙｏｆｆｓ",
            "lay\u{200B}offs",
            "lay\u{AD}offs",
            "l\u{430}y\u{43e}ffs",
            "layöffs",
            "CAFÉ",
            "cafe\u{301}",
            "日本",
            "\u{202E}sffoyal\u{202C}",
            "＃BigLayoffs",
        ] {
            assert!(!clean(text), "{text:?} was cleared without the normaliser");
        }
        // With a regex, the prefilter is not used at all: the regex sees the normalised text.
        let r = Matcher::new(&[], &[], &[], &s(&["a+b"])).unwrap();
        assert_eq!(r.find("AAB").len(), 1);
    }

    #[test]
    fn initials_are_letter_spelled_words() {
        let text = "Thanks to Dr. A.S.S. Murthy for the talk";
        assert_eq!(
            spans(&deny(&["ass"]), text),
            vec![("ass".into(), "A.S.S".into())]
        );
        let m = Matcher::new(&s(&["ass"]), &[], &s(&["A.S.S. Murthy"]), &[]).unwrap();
        assert!(m.find(text).is_empty());
    }

    /// The generated table covers UTS #39: every letter of another script (the CJK ones,
    /// Han, Hangul and Bopomofo, aside: their characters are syllables and ideographs, and
    /// combining signs such as the anusvara are marks, not letters) whose confusable prototype, marks removed, is one ASCII letter normalises to
    /// a plain letter; and no ASCII character is ever rewritten.
    #[test]
    fn lookalike_table_covers_confusables() {
        use unicode_script::{Script, UnicodeScript};
        let mut missing = Vec::new();
        for c in (0x80..0x11_0000u32).filter_map(char::from_u32) {
            if !c.is_alphabetic()
                || is_combining_mark(c)
                || matches!(
                    c.script(),
                    Script::Latin
                        | Script::Common
                        | Script::Inherited
                        | Script::Unknown
                        | Script::Han
                        | Script::Hangul
                        | Script::Bopomofo
                )
            {
                continue;
            }
            let skeleton: String = unicode_security::skeleton(&c.to_string())
                .filter(|d| !is_combining_mark(*d))
                .collect();
            let mut sk = skeleton.chars();
            if let (Some(a), None) = (sk.next(), sk.next())
                && a.is_ascii_alphabetic()
            {
                let n = normalize(&c.to_string()).text;
                if !(n.len() == 1 && n.as_bytes()[0].is_ascii_lowercase()) {
                    missing.push((c, a, n));
                }
            }
        }
        assert!(missing.is_empty(), "not mapped: {missing:?}");
        for b in 0..0x80u8 {
            assert_eq!(lookalike_letter(b as char), None);
            assert_eq!(lookalike(b as char), b as char);
        }
        // Upper-case look-alikes of I are i, not l.
        assert_eq!(normalize("\u{399}\u{406}").text, "ii");
    }

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
        assert_eq!(normalize("ɑ").text, "a"); // Latin alpha imitates a
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

    /// A straightforward re-implementation of the contract, char by char with no fast path
    /// and no incremental state, using different building blocks where possible
    /// (whole-string NFKC, `\p{Mn}`, the skeleton's own notion of ignorable characters,
    /// grapheme iteration). The look-alike table itself is data, checked against UTS #39
    /// in `lookalike_table_covers_confusables`.
    mod reference {
        use super::super::{Level, compile_regex, is_joiner, lookalike_letter};
        use regex::Regex;
        use std::collections::{BTreeMap, BTreeSet};
        use std::sync::LazyLock;
        use unicode_normalization::UnicodeNormalization;
        use unicode_segmentation::UnicodeSegmentation;

        /// (normalised char, original start, original end)
        pub type Chars = Vec<(char, usize, usize)>;

        static MARK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{Mn}\p{Me}]$").unwrap());
        static FORMAT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Cf}$").unwrap());

        fn fold(k: char, s: usize, e: usize, out: &mut Chars) {
            for u in k.to_uppercase() {
                for l in u.to_lowercase() {
                    for d in l.to_string().nfd() {
                        let ds = d.to_string();
                        let skeleton: String = unicode_security::skeleton(&ds).collect();
                        if skeleton.is_empty() || MARK.is_match(&ds) || FORMAT.is_match(&ds) {
                            continue; // default-ignorable (the skeleton drops those), Cf, mark
                        }
                        out.push((lookalike_letter(d).unwrap_or(d), s, e));
                    }
                }
            }
        }

        /// Per original character: its look-alike letter, or NFKC of that character alone,
        /// then fold.
        pub fn chars(text: &str) -> Chars {
            let mut out = Vec::new();
            for (i, c) in text.char_indices() {
                let e = i + c.len_utf8();
                if let Some(l) = lookalike_letter(c) {
                    out.push((l, i, e));
                    continue;
                }
                for k in c.to_string().nfkc() {
                    fold(k, i, e, &mut out);
                }
            }
            out
        }

        /// NFKC of the whole string first (no offsets), to check context-freeness: the
        /// characters that map to a letter on their own are replaced first, then the
        /// whole string goes through NFKC (which may compose across characters).
        pub fn chars_whole(text: &str) -> Chars {
            let early: String = text
                .chars()
                .map(|c| lookalike_letter(c).unwrap_or(c))
                .collect();
            let mut out = Vec::new();
            for k in early.nfkc() {
                fold(k, 0, 0, &mut out);
            }
            out
        }

        pub struct Reading {
            pub text: String,
            pub starts: Vec<usize>,
            pub ends: Vec<usize>,
        }

        /// Both readings: the first, and the second (hashtags split at case changes and
        /// letter/digit changes, lone hyphens between words removed) when it differs in
        /// what it does.
        pub fn normalize(original: &str, chars: &Chars) -> (Reading, Option<Reading>) {
            let mut words: Vec<Chars> = Vec::new();
            let mut seps: Vec<Chars> = Vec::new(); // seps[k] lies between words k and k+1
            let mut hashtag: Vec<bool> = Vec::new();
            let mut cur: Chars = Vec::new();
            let mut last_sep: Option<char> = None;
            let mut in_word = false;
            for &(c, s, e) in chars {
                if c.is_alphanumeric() {
                    if !in_word {
                        if !words.is_empty() {
                            seps.push(std::mem::take(&mut cur));
                        }
                        words.push(Vec::new());
                        hashtag.push(last_sep == Some('#'));
                        in_word = true;
                    }
                    words.last_mut().unwrap().push((c, s, e));
                } else {
                    in_word = false;
                    last_sep = Some(c);
                    if !words.is_empty() {
                        cur.push((c, s, e));
                    }
                }
            }
            let single = |w: &Chars| w.len() == 1 && w[0].0.is_alphabetic();
            let ws = |k: usize| seps[k].iter().all(|x| x.0.is_whitespace());
            let eligible = |k: usize| {
                single(&words[k]) && single(&words[k + 1]) && seps[k].iter().all(|x| is_joiner(x.0))
            };
            let mut joined: BTreeSet<usize> = BTreeSet::new();
            let mut k = 0;
            while k < seps.len() {
                if !eligible(k) {
                    k += 1;
                    continue;
                }
                let a = k;
                while k < seps.len() && eligible(k) {
                    k += 1;
                }
                for j in a..k {
                    let lone_ws = ws(j) && (j == a || !ws(j - 1)) && (j + 1 == k || !ws(j + 1));
                    let beside = (j > a && !ws(j - 1)) || (j + 1 < k && !ws(j + 1));
                    if !(lone_ws && beside) {
                        joined.insert(j);
                    }
                }
            }
            let hyphen = |k: usize| {
                seps[k].len() == 1 && matches!(seps[k][0].0, '-' | '\u{2010}' | '\u{2011}')
            };
            let case_of = |w: &Chars, i: usize| {
                let (_, s, e) = w[i];
                if s == e || (i > 0 && w[i - 1].1 == s) {
                    return 'o'; // a later character of the same original one
                }
                let c = original[s..e].chars().next().unwrap();
                if c.is_uppercase() {
                    'u'
                } else if c.is_lowercase() {
                    'l'
                } else if c.is_numeric() {
                    'd'
                } else {
                    'o'
                }
            };
            let splits = |w: &Chars| -> Vec<usize> {
                let mut out = Vec::new();
                let cases: Vec<char> = (0..w.len()).map(|i| case_of(w, i)).collect();
                let mut prev: Option<(usize, char)> = None;
                for (i, &c) in cases.iter().enumerate() {
                    if c == 'o' {
                        continue;
                    }
                    if let Some((p, pc)) = prev {
                        let split = match (pc, c) {
                            ('l', 'u') | ('l' | 'u', 'd') | ('d', 'l' | 'u') => Some(i),
                            ('u', 'l')
                                if p > 0 && {
                                    let q = (0..p).rev().find(|&q| cases[q] != 'o');
                                    q.is_some_and(|q| cases[q] == 'u')
                                } =>
                            {
                                Some(p)
                            }
                            _ => None,
                        };
                        out.extend(split);
                    }
                    prev = Some((i, c));
                }
                out
            };
            let build = |alt: bool| {
                let (mut text, mut starts, mut ends) = (String::new(), Vec::new(), Vec::new());
                for (k, w) in words.iter().enumerate() {
                    if k > 0 && !joined.contains(&(k - 1)) && !(alt && hyphen(k - 1)) {
                        text.push(' ');
                        starts.push(seps[k - 1][0].1);
                        ends.push(seps[k - 1][seps[k - 1].len() - 1].2);
                    }
                    let cuts = if alt && hashtag[k] {
                        splits(w)
                    } else {
                        Vec::new()
                    };
                    for (i, &(c, s, e)) in w.iter().enumerate() {
                        if cuts.contains(&i) {
                            text.push(' ');
                            starts.push(s);
                            ends.push(s);
                        }
                        text.push(c);
                        for _ in 0..c.len_utf8() {
                            starts.push(s);
                            ends.push(e);
                        }
                    }
                }
                Reading { text, starts, ends }
            };
            let has_alt = (0..seps.len()).any(hyphen)
                || (0..words.len()).any(|k| hashtag[k] && !splits(&words[k]).is_empty());
            (build(false), has_alt.then(|| build(true)))
        }

        pub type Found = Vec<(usize, usize, String, Level, bool)>;

        fn widen(text: &str, s: usize, e: usize) -> (usize, usize) {
            let bounds: Vec<usize> = text
                .grapheme_indices(true)
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let s = *bounds.iter().rev().find(|&&b| b <= s).unwrap();
            let e = *bounds.iter().find(|&&b| b >= e).unwrap();
            (s, e)
        }

        pub fn find(
            deny: &[String],
            warn: &[String],
            allow: &[String],
            regex: &[String],
            text: &str,
        ) -> Found {
            let (first, second) = normalize(text, &chars(text));
            let mut allowed: Vec<(usize, usize)> = Vec::new();
            let mut raw = Vec::new();
            for r in std::iter::once(&first).chain(second.as_ref()) {
                let nt = &r.text;
                let span = |s: usize, e: usize| {
                    let a = *r.starts[s..e].iter().min().unwrap();
                    let b = *r.ends[s..e].iter().max().unwrap();
                    widen(text, a, b)
                };
                let whole_word = |s: usize, e: usize| {
                    (s == 0 || nt.as_bytes()[s - 1] == b' ')
                        && (e == nt.len() || nt.as_bytes()[e] == b' ')
                };
                let occurrences = |term: &str| -> Vec<(usize, usize)> {
                    let needle = normalize(term, &chars(term)).0.text;
                    if needle.is_empty() {
                        return Vec::new();
                    }
                    (0..nt.len())
                        .filter(|&i| nt.is_char_boundary(i) && nt[i..].starts_with(&needle))
                        .map(|i| (i, i + needle.len()))
                        .filter(|&(s, e)| whole_word(s, e))
                        .collect()
                };
                for t in allow {
                    allowed.extend(occurrences(t).into_iter().map(|(s, e)| span(s, e)));
                }
                for (list, level) in [(deny, Level::Deny), (warn, Level::Warn)] {
                    for t in list {
                        for (s, e) in occurrences(t) {
                            let (s, e) = span(s, e);
                            raw.push((s, e, t.clone(), level, false));
                        }
                    }
                }
                for p in regex {
                    for m in compile_regex(p).unwrap().find_iter(nt) {
                        if !m.as_str().is_empty() {
                            let (s, e) = span(m.start(), m.end());
                            raw.push((s, e, p.clone(), Level::Deny, true));
                        }
                    }
                }
            }
            let mut best: BTreeMap<(usize, usize, String), (Level, bool)> = BTreeMap::new();
            for (s, e, term, level, is_regex) in raw {
                if allowed.iter().any(|&(a, b)| a <= s && e <= b) {
                    continue;
                }
                let v = best.entry((s, e, term)).or_insert((level, is_regex));
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
            "ʟ",
            "ł",
            "\u{43a}",
            "\u{41a}",
            "\u{3a5}",
            "\u{1F15B}",
            "\u{1F1F1}",
            "\u{20DD}",
            "/",
            "|",
            "\u{2800}",
            "\u{FFF9}",
            "#",
            "-",
            "Ab",
            "aB",
            "AB",
            "1",
            "\u{3f2}",
            "\u{24a7}",
            "\u{1D00}",
            "\u{336}",
            "\u{1F1E6}",
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
        /// Words of the prefilter's terms and the separators and cases around them.
        const PREFILTER_PIECES: &[&str] = &[
            "a", "b", "c", "ab", "bc", "abc", "A", "B", "C", "Ab", "aB", "AB", "1", "9", "a1",
            " ", " ", " ", "  ", ".", "-", "#", "/", "'", ",", "_", "\u{2010}", "\u{200B}",
            "\u{FF41}", "\u{430}", "\u{301}", "🔥", "\u{FF03}", "\u{202E}", "\u{202C}", "\n",
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
            const SMALL_CAPITALS: &str = "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡxʏᴢ";
            let lookalike = LOOKALIKES.iter().find(|l| l.0 == c).map(|l| l.1);
            let index = c as u32 - 'a' as u32;
            let offset = |base: u32| char::from_u32(base + index).unwrap().to_string();
            match how % 11 {
                1 => c.to_ascii_uppercase().to_string(),
                2 => offset(0xFF41), // full-width
                3 if lookalike.is_some() => {
                    let fakes: Vec<char> = lookalike.unwrap().chars().collect();
                    fakes[how as usize % fakes.len()].to_string()
                }
                4 => offset(0xFF21), // full-width upper
                5 => SMALL_CAPITALS
                    .chars()
                    .nth(index as usize)
                    .unwrap()
                    .to_string(),
                6 => offset(0x1F170),         // negative squared
                7 => offset(0x24D0),          // circled
                8 => offset(0x249C),          // parenthesized
                9 => format!("{c}\u{336}"),   // long stroke overlay
                10 => format!("{c}\u{20DD}"), // enclosing circle
                _ => c.to_string(),
            }
        }

        /// Every grapheme boundary of a text (its start and end included).
        fn boundaries(text: &str) -> Vec<usize> {
            use unicode_segmentation::UnicodeSegmentation;
            text.grapheme_indices(true)
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect()
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
                let bounds = boundaries(&text);
                for h in &hits {
                    prop_assert!(bounds.contains(&h.start) && bounds.contains(&h.end), "{h:?} in {text:?}");
                }
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
                let (first, second) = reference::normalize(&text, &reference::chars(&text));
                prop_assert_eq!(&n.text, &first.text);
                prop_assert_eq!(&normalize_text(&text), &first.text, "the untracked path differs");
                prop_assert_eq!(&n.starts, &first.starts);
                prop_assert_eq!(&n.ends, &first.ends);
                match (&n.alt, &second) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        prop_assert_eq!(&a.text, &b.text, "second reading");
                        prop_assert_eq!(&a.starts, &b.starts);
                        prop_assert_eq!(&a.ends, &b.ends);
                    }
                    (a, b) => prop_assert!(false, "second reading {:?} vs {:?}", a.as_ref().map(|a| &a.text), b.as_ref().map(|b| &b.text)),
                }
                let whole = reference::normalize(&text, &reference::chars_whole(&text)).0.text;
                prop_assert_eq!(&n.text, &whole, "per-char NFKC differs from whole-string NFKC");

                let m = Matcher::new(&deny, &warn, &allow, &regex).unwrap();
                let got: reference::Found = m
                    .find(&text)
                    .into_iter()
                    .map(|h| (h.start, h.end, h.term, h.level, h.regex))
                    .collect();
                let want = reference::find(&deny, &warn, &allow, &regex, &text);
                let bounds = boundaries(&text);
                for (s, e, ..) in &got {
                    prop_assert!(bounds.contains(s) && bounds.contains(e), "span {s}..{e} of {text:?}");
                }
                prop_assert_eq!(got, want, "normalised {:?}", n.text);
            }
        }

        proptest! {
            // Cheap cases, and the shapes that matter are rare: 4096 unless PROPTEST_CASES.
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4096)
            ))]

            /// A term taken as its own normalised form (`already_normal`) is one: the
            /// normaliser leaves it as it is.
            #[test]
            fn already_normal_terms_are_normal(text in "[a-z0-9 A.-]{0,14}") {
                let mut b = Builder::new(false);
                b.run(&text);
                let normal = String::from_utf8(b.text.clone()).unwrap();
                if already_normal(&text) {
                    prop_assert_eq!(&normal, &text);
                }
                prop_assert_eq!(normalize_text(&text), normal);
            }

            /// The raw-byte prefilter changes nothing: `find` with it finds what it finds
            /// without it, spans included; and a text it clears has no whole-word hit of
            /// any list in either normalised reading. Random printable ASCII, ASCII rich in
            /// the shapes the prefilter must leave to the normaliser (joined letters,
            /// hyphens, hashtags in CamelCase, case), and the Unicode pieces above.
            #[test]
            fn prefilter_agrees_with_the_normaliser(
                text in prop_oneof![
                    "[ -~]{0,60}",
                    "[abcABC019 .#'_*/|,-]{0,40}",
                    text(PREFILTER_PIECES, 16),
                    "(([abcAB]|ab)[ ./*#-]{1,2}){1,6}[abc]?",
                    text(TEXT_PIECES, 40),
                ],
                deny in prop::collection::vec("[abc19]{1,2}( [abc]{1,2}){0,2}", 0..5),
                fixed in prop::collection::vec(select(TERM_PIECES).prop_map(String::from), 0..3),
                warn in prop::collection::vec("[abc]{1,3}", 0..2),
                allow in prop::collection::vec("[abc]{1,3}( [abc]{1,2})?", 0..2),
                picks in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            ) {
                let mut deny = deny;
                deny.extend(fixed);
                // Terms taken from the text's own words and pairs of words, in both
                // readings, so that most texts hold a term in some form.
                let n = normalize(&text);
                let mut own: Vec<String> = Vec::new();
                for reading in std::iter::once(&n.text).chain(n.alt.as_ref().map(|a| &a.text)) {
                    let words: Vec<&str> = reading.split(' ').filter(|w| !w.is_empty()).collect();
                    own.extend(words.iter().map(|w| w.to_string()));
                    own.extend(words.windows(2).map(|w| w.join(" ")));
                }
                if !own.is_empty() {
                    deny.extend(picks.iter().map(|i| own[i.index(own.len())].clone()));
                }
                let m = Matcher::new(&deny, &warn, &allow, &[]).unwrap();
                let fast = m.find_with(&text, true);
                let full = m.find_with(&text, false);
                prop_assert_eq!(&fast, &full, "text {:?}", text);
                let clean = with_scratch(|b| b.proves_clean(&text, &m.words));
                if clean {
                    let mut readings = vec![n.text.clone()];
                    readings.extend(n.alt.as_ref().map(|a| a.text.clone()));
                    for reading in readings {
                        let mut any = None;
                        m.words.scan(reading.as_bytes(), |id, s, e| {
                            any = Some((id, s, e));
                            false
                        });
                        prop_assert!(any.is_none(), "{text:?} cleared, but {reading:?} has the hit {any:?}");
                    }
                }
            }
        }
    }
}
