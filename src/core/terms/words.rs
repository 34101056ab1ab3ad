//! The term set: every normalised term, found by whole words in normalised text.
//!
//! Normalised text is words separated by single spaces, and a term matches only whole
//! words, so a hit is a run of consecutive words equal to a term. `WordSet` is an
//! open-addressing hash table of the terms and of their word prefixes (`insider` for
//! `insider trading`), probed once per word of the text (and again per further word only
//! while the words so far begin some phrase); a bit set keyed by each key's first word
//! (its first two bytes, last byte and length) rejects most words of a post before any
//! lookup, and the spaces between words are found eight bytes at a time. Building it is linear in the bytes of the
//! terms, whatever their shape (an Aho-Corasick automaton took 20 s for the 100,000 terms
//! `x0` ... `x99999`, see the `hostile` benchmark in benches/terms.rs), and identical terms
//! share one entry.

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
    /// A bit per first word of every key (`first_word_bit`): most words of a post are the
    /// first word of no key, and are rejected without a lookup.
    firsts: Vec<u64>,
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

/// Bits in `WordSet::firsts`.
const FIRST_BITS: usize = 1 << 17;

/// The bit of `WordSet::firsts` for a word (no spaces, not empty): a hash of its first two
/// bytes, its last byte and its length, so most words of a post that begin like some term
/// (`from`, `some`, `price`) are still rejected without a lookup.
#[inline]
fn first_word_bit(word: &[u8]) -> usize {
    let a = u64::from(word[0]);
    let b = u64::from(*word.get(1).unwrap_or(&0));
    let z = u64::from(word[word.len() - 1]);
    let key = a | (b << 8) | (z << 16) | ((word.len() as u64) << 24);
    (mix(key, K) as usize) & (FIRST_BITS - 1)
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
        let mut set = WordSet {
            firsts: vec![0; FIRST_BITS / 64],
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
            let first = key.split(' ').next().expect("split yields one piece");
            let f = first_word_bit(first.as_bytes());
            set.firsts[f >> 6] |= 1 << (f & 63);
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
        // Every word of the text is tested against `firsts` (its first two bytes, last byte
        // and length), and only one that is the first word of some key is looked up. The
        // spaces are found eight bytes at a time (a word-wide equality test).
        const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
        const SPACES: u64 = 0x2020_2020_2020_2020;
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
                if !self.probe(text, word, space, &mut hit) {
                    return;
                }
                word = space + 1;
            }
            base += 8;
        }
        for (k, &b) in chunks.remainder().iter().enumerate() {
            if b == b' ' {
                if !self.probe(text, word, base + k, &mut hit) {
                    return;
                }
                word = base + k + 1;
            }
        }
        if word < text.len() {
            self.probe(text, word, text.len(), &mut hit);
        }
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
        if i >= end {
            return true;
        }
        let f = first_word_bit(&text[i..end]);
        if self.firsts[f >> 6] & (1 << (f & 63)) == 0 {
            return true;
        }
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
