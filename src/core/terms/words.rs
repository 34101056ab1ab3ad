//! The term set: every normalised term, found by whole words in normalised text.
//!
//! Normalised text is words separated by single spaces, and a term matches only whole
//! words, so a hit is a run of consecutive words equal to a term. `WordSet` is an
//! open-addressing hash table of the terms and of their word prefixes (`insider` for
//! `insider trading`), probed once per word of the text (and again per further word only
//! while the words so far begin some phrase). Building it is linear in the bytes of the
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
    /// A bit per (first byte, second byte) of the first word of every key: most words of a
    /// post start with a pair no term starts with, and are rejected without hashing.
    firsts: Vec<u64>,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
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

#[inline]
fn pair(word: &[u8]) -> usize {
    let a = word[0] as usize;
    let b = word
        .get(1)
        .map_or(0, |&b| if b == b' ' { 0 } else { b as usize });
    (a << 8) | b
}

impl WordSet {
    /// `terms` are (normalised term, pattern id); empty terms are skipped.
    pub(super) fn new<'a>(terms: impl IntoIterator<Item = (&'a str, u32)>) -> WordSet {
        let mut grouped: HashMap<&'a str, (Vec<u32>, bool)> = HashMap::new();
        for (term, id) in terms {
            if term.is_empty() {
                continue;
            }
            grouped.entry(term).or_default().0.push(id);
            for (i, _) in term.match_indices(' ') {
                grouped.entry(&term[..i]).or_default().1 = true;
            }
        }
        let mut set = WordSet {
            firsts: vec![0; 1 << 10],
            ..WordSet::default()
        };
        let capacity = (grouped.len() * 2).next_power_of_two().max(16);
        set.slots = vec![0; capacity];
        // A fixed order, so that the table (and so the order of hits) is the same each run.
        let mut grouped: Vec<(&str, (Vec<u32>, bool))> = grouped.into_iter().collect();
        grouped.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (key, (ids, prefix)) in grouped {
            let k0 = set.keys.len() as u32;
            set.keys.extend_from_slice(key.as_bytes());
            let i0 = set.ids.len() as u32;
            set.ids.extend_from_slice(&ids);
            let entry = Entry {
                hash: hash(key.as_bytes()),
                key: (k0, set.keys.len() as u32),
                ids: (i0, set.ids.len() as u32),
                prefix,
            };
            let p = pair(key.as_bytes());
            set.firsts[p >> 6] |= 1 << (p & 63);
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
    /// words separated by single spaces) that is a term, overlapping ones included.
    #[inline]
    pub(super) fn scan(&self, text: &[u8], mut hit: impl FnMut(u32, usize, usize) -> bool) {
        if self.entries.is_empty() {
            return;
        }
        let n = text.len();
        let word_end = |from: usize| {
            text[from..]
                .iter()
                .position(|&b| b == b' ')
                .map_or(n, |k| from + k)
        };
        let mut i = 0;
        while i < n {
            let j = word_end(i);
            let p = pair(&text[i..]);
            if self.firsts[p >> 6] & (1 << (p & 63)) != 0 {
                let mut end = j;
                while let Some(e) = self.get(&text[i..end]) {
                    for &id in &self.ids[e.ids.0 as usize..e.ids.1 as usize] {
                        if !hit(id, i, end) {
                            return;
                        }
                    }
                    if !e.prefix || end >= n {
                        break;
                    }
                    end = word_end(end + 1);
                }
            }
            i = j + 1;
        }
    }
}
