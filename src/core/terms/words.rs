//! The term set: every normalised term, found by whole words in normalised text.
//!
//! Normalised text is words separated by single spaces, and a term matches only whole
//! words, so a hit is a run of consecutive words equal to a term. `WordSet` is an
//! open-addressing hash table of the terms and of their word prefixes (`insider` for
//! `insider trading`), probed once per word of the text (and again per further word only
//! while the words so far begin some phrase). Two small Bloom filters keyed by a word's
//! shape (`Shape`: its first two bytes, last two bytes and length) reject most words of a
//! post before any lookup: one holds the one-word terms, the other the first two words of
//! every longer term, so a word that merely begins some phrase (at 10,000 terms, `the`,
//! `from` and most other common words do) is looked up only when the next word also fits.
//! The spaces between words are found eight bytes at a time. Building it is linear in the
//! bytes of the terms, whatever their shape (an Aho-Corasick automaton took 20 s for the
//! 100,000 terms `x0` ... `x99999`, see the `hostile` benchmark in benches/terms.rs), and
//! identical terms share one entry.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// The key, as a range of `WordSet::keys`.
    key: (u32, u32),
    /// Pattern ids, as a range of `WordSet::ids` (empty for a prefix only).
    ids: (u32, u32),
    /// Some longer term begins with this key and a space.
    prefix: bool,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub(super) struct WordSet {
    keys: Vec<u8>,
    entries: Vec<Entry>,
    ids: Vec<u32>,
    /// Entry index + 1, or 0 for an empty slot; the length is a power of two.
    slots: Vec<u32>,
    /// The shapes of the one-word terms.
    singles: Filter,
    /// The shapes of the first two words of every term of two words or more.
    pairs: Filter,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A `BuildHasher` with this module's hash: fixed, so the same terms make the same table on
/// every run, and cheaper than SipHash for the many short keys of a policy.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fixed;

impl std::hash::BuildHasher for Fixed {
    type Hasher = FixedHasher;
    fn build_hasher(&self) -> FixedHasher {
        FixedHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FixedHasher(u64);

impl std::hash::Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0 ^ hash(bytes), K);
    }
    fn write_u8(&mut self, b: u8) {
        self.0 = mix(self.0 ^ u64::from(b), K);
    }
}

#[inline]
fn hash(bytes: &[u8]) -> u64 {
    let mut h = mix(bytes.len() as u64 ^ 0x243F_6A88_85A3_08D3, K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = mix(h ^ w, K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(buf), 0xA076_1D64_78BD_642F);
    }
    h
}

/// The shape of one word (no spaces, not empty) as the filters see it: its first two
/// bytes, its last two bytes and its length, packed (a missing byte is 0). Cheap to compute
/// while a word is read byte by byte (see `Shape::push`), and distinct for most pairs of
/// different words a post and a policy hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Shape(
    /// Packed: the first byte, the second, the second to last, the last (a byte each, 0
    /// when missing), then the length (from bit 32).
    u64,
);

impl Shape {
    const LEN: u64 = 1 << 32;

    /// The shape of `word`.
    #[inline]
    pub(super) fn of(word: &[u8]) -> Shape {
        let n = word.len();
        let mut shape = Shape::default();
        shape.extend(word, |b| b);
        debug_assert_eq!(shape.0 >> 32, n as u64);
        shape
    }

    #[inline]
    fn len(self) -> u64 {
        self.0 >> 32
    }

    /// The shape of this word with `byte` appended.
    #[inline]
    pub(super) fn push(&mut self, byte: u8) {
        let len = self.len();
        let mut x = self.0;
        if len < 2 {
            x |= u64::from(byte) << (8 * len);
        }
        let last = (x >> 24) & 0xFF;
        x = (x & !0xFFFF_0000) | last << 16 | u64::from(byte) << 24;
        self.0 = x + Shape::LEN;
    }

    /// The shape of this word with `run` appended, each byte through `map` (lower-casing).
    #[inline]
    pub(super) fn extend(&mut self, run: &[u8], map: impl Fn(u8) -> u8) {
        match run {
            [] => {}
            [b] => self.push(map(*b)),
            [.., y, z] => {
                let mut x = self.0;
                match self.len() {
                    0 => x |= u64::from(map(run[0])) | u64::from(map(run[1])) << 8,
                    1 => x |= u64::from(map(run[0])) << 8,
                    _ => {}
                }
                x = (x & !0xFFFF_0000) | u64::from(map(*y)) << 16 | u64::from(map(*z)) << 24;
                self.0 = x + Shape::LEN * run.len() as u64;
            }
        }
    }

    /// The key the filters are tested with (see `WordSet::may_begin`).
    #[inline]
    pub(super) fn key(self) -> u64 {
        mix(self.0 ^ 0x9E37_79B9, K)
    }
}

/// The key of two consecutive words for the phrase filter, from their `Shape::key`s.
#[inline]
fn pair_key(word: u64, next: u64) -> u64 {
    word.rotate_left(23) ^ next
}

/// A blocked Bloom filter of 64-bit keys: each key sets two bits of one `u64`, so a test is
/// one memory read. Sized at 64 bits per key, a word that is not in it passes about once in
/// a thousand.
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    blocks: Vec<u64>,
}

impl Filter {
    fn new(keys: usize) -> Filter {
        Filter {
            blocks: vec![0; keys.max(1).next_power_of_two()],
        }
    }

    #[inline]
    fn bits(&self, key: u64) -> (usize, u64) {
        let block = (key >> 12) as usize & (self.blocks.len() - 1);
        (block, 1 << (key & 63) | 1 << ((key >> 6) & 63))
    }

    fn insert(&mut self, key: u64) {
        let (block, bits) = self.bits(key);
        self.blocks[block] |= bits;
    }

    #[inline]
    fn contains(&self, key: u64) -> bool {
        let (block, bits) = self.bits(key);
        self.blocks[block] & bits == bits
    }
}

impl WordSet {
    /// `terms` are (normalised term, pattern id); empty terms are skipped. Keys are laid out
    /// in the order they first appear, so the table is the same on every run.
    pub(super) fn new<'a>(terms: impl ExactSizeIterator<Item = (&'a str, u32)>) -> WordSet {
        // Key index by key, with this module's own hash (no per-process seed, no SipHash).
        let mut index: HashMap<&'a str, u32, Fixed> =
            HashMap::with_capacity_and_hasher(terms.len(), Fixed);
        let mut keys: Vec<(&'a str, bool)> = Vec::new();
        // (key index, pattern id)
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut key = |k: &'a str, keys: &mut Vec<(&'a str, bool)>| {
            *index.entry(k).or_insert_with(|| {
                keys.push((k, false));
                keys.len() as u32 - 1
            })
        };
        for (term, id) in terms {
            if term.is_empty() {
                continue;
            }
            let k = key(term, &mut keys);
            pairs.push((k, id));
            for (i, _) in term.match_indices(' ') {
                let p = key(&term[..i], &mut keys);
                keys[p as usize].1 = true;
            }
        }
        // Ids grouped by key, each key's in the order given.
        pairs.sort_by_key(|&(k, _)| k);
        let singles = keys.iter().filter(|(k, _)| !k.contains(' ')).count();
        let mut set = WordSet {
            singles: Filter::new(singles),
            pairs: Filter::new(keys.len() - singles),
            ..WordSet::default()
        };
        let capacity = (keys.len() * 2).next_power_of_two().max(16);
        set.slots = vec![0; capacity];
        set.entries.reserve(keys.len());
        set.ids.reserve(pairs.len());
        set.keys.reserve(keys.iter().map(|(k, _)| k.len()).sum());
        let mut next = 0;
        for (k, (key, prefix)) in keys.into_iter().enumerate() {
            let k0 = set.keys.len() as u32;
            set.keys.extend_from_slice(key.as_bytes());
            let i0 = set.ids.len() as u32;
            while next < pairs.len() && pairs[next].0 as usize == k {
                set.ids.push(pairs[next].1);
                next += 1;
            }
            let entry = Entry {
                hash: hash(key.as_bytes()),
                key: (k0, set.keys.len() as u32),
                ids: (i0, set.ids.len() as u32),
                prefix,
            };
            if i0 < set.ids.len() as u32 {
                // A term (not only a prefix): its first word, or its first two.
                let mut words = key.split(' ').map(|w| Shape::of(w.as_bytes()));
                let first = words.next().expect("split yields one piece");
                match words.next() {
                    None => set.singles.insert(first.key()),
                    Some(second) => set.pairs.insert(pair_key(first.key(), second.key())),
                }
            }
            let mask = set.slots.len() - 1;
            let mut s = entry.hash as usize & mask;
            while set.slots[s] != 0 {
                s = (s + 1) & mask;
            }
            set.entries.push(entry);
            set.slots[s] = set.entries.len() as u32;
        }
        set
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        let h = hash(key);
        let mask = self.slots.len() - 1;
        let mut s = h as usize & mask;
        loop {
            let slot = self.slots[s];
            if slot == 0 {
                return None;
            }
            let e = &self.entries[slot as usize - 1];
            if e.hash == h && &self.keys[e.key.0 as usize..e.key.1 as usize] == key {
                return Some(e);
            }
            s = (s + 1) & mask;
        }
    }

    /// Calls `hit(pattern id, start, end)` for every run of whole words of `text` (normalised:
    /// words separated by single spaces) that is a term, overlapping ones included; stops
    /// when `hit` returns false.
    #[inline]
    pub(super) fn scan(&self, text: &[u8], mut hit: impl FnMut(u32, usize, usize) -> bool) {
        if self.entries.is_empty() || text.is_empty() {
            return;
        }
        // Every word of the text is tested against the filters (with the next word, for
        // the pairs), and only one that may begin some term is looked up. The spaces are
        // found eight bytes at a time (a word-wide equality test).
        const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
        const SPACES: u64 = 0x2020_2020_2020_2020;
        // The word before the current one, still to be tested: (start, end, key).
        let mut prev: Option<(usize, usize, u64)> = None;
        let mut word_at = |i: usize, end: usize| {
            if i >= end {
                return true;
            }
            let key = Shape::of(&text[i..end]).key();
            if let Some((pi, pe, pk)) = prev.replace((i, end, key))
                && self.may_begin(pk, Some(key))
            {
                return self.probe(text, pi, pe, &mut hit);
            }
            true
        };
        let mut word = 0;
        let mut chunks = text.chunks_exact(8);
        let mut base = 0;
        for chunk in &mut chunks {
            let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes")) ^ SPACES;
            // The high bit of each byte that is zero in `x`, i.e. a space in `text`.
            let mut spaces = !(((x & LOW7) + LOW7) | x) & !LOW7;
            while spaces != 0 {
                let space = base + (spaces.trailing_zeros() / 8) as usize;
                spaces &= spaces - 1;
                if !word_at(word, space) {
                    return;
                }
                word = space + 1;
            }
            base += 8;
        }
        for (k, &b) in chunks.remainder().iter().enumerate() {
            if b == b' ' {
                if !word_at(word, base + k) {
                    return;
                }
                word = base + k + 1;
            }
        }
        if !word_at(word, text.len()) {
            return;
        }
        if let Some((pi, pe, pk)) = prev
            && self.may_begin(pk, None)
        {
            self.probe(text, pi, pe, &mut hit);
        }
    }

    /// Whether some term may begin with a word whose `Shape::key` is `word`, followed by
    /// one whose key is `next` (`None` at the end of the text); false means no term does.
    #[inline]
    pub(super) fn may_begin(&self, word: u64, next: Option<u64>) -> bool {
        self.singles.contains(word)
            || next.is_some_and(|next| self.pairs.contains(pair_key(word, next)))
    }

    /// The terms that start with the word `text[i..end]`; false when `hit` asked to stop.
    #[inline]
    fn probe(
        &self,
        text: &[u8],
        i: usize,
        end: usize,
        hit: &mut impl FnMut(u32, usize, usize) -> bool,
    ) -> bool {
        let n = text.len();
        let word_end = |from: usize| memchr::memchr(b' ', &text[from..]).map_or(n, |k| from + k);
        let mut end = end;
        while let Some(e) = self.get(&text[i..end]) {
            for &id in &self.ids[e.ids.0 as usize..e.ids.1 as usize] {
                if !hit(id, i, end) {
                    return false;
                }
            }
            if !e.prefix || end >= n {
                break;
            }
            end = word_end(end + 1);
        }
        true
    }
}
