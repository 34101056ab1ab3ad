//! The floor: a bare aho-corasick scan of the raw bytes of every post, ASCII
//! case-insensitive, with no normalisation and no word check. Nothing `gate` does for a
//! post can be cheaper than this, so it is what `gate check --jsonl` is measured against.
//!
//! Usage: floor TERMS_FILE POSTS_FILE   (one term a line; one post a line)
//! Run by `bench/run.sh`; plain `cargo bench` prints the usage and exits.

use std::time::Instant;

use aho_corasick::AhoCorasick;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [terms, posts] = args.as_slice() else {
        eprintln!("usage: floor TERMS_FILE POSTS_FILE (run by bench/run.sh)");
        return;
    };
    let start = Instant::now();
    let terms = std::fs::read_to_string(terms).expect("cannot read the terms file");
    let posts = std::fs::read(posts).expect("cannot read the posts file");
    let patterns: Vec<&str> = terms.lines().filter(|t| !t.is_empty()).collect();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&patterns)
        .expect("cannot build the automaton");
    let built = start.elapsed();
    let mut count = 0usize;
    for line in posts.split(|&b| b == b'\n') {
        count += ac.find_iter(line).count();
    }
    let total = start.elapsed();
    println!(
        "{count} matches of {} terms; build {:.1} ms, total {:.1} ms",
        patterns.len(),
        built.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
}
