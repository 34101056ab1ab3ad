//! The `--jsonl` calendar reader: lines split, bounded, and each judged or placed.
#![no_main]
use libfuzzer_sys::fuzz_target;

const POLICY: &str = "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n";

fuzz_target!(|data: &[u8]| {
    let policy = gate::core::policy::parse(&gate::core::diagnostic::Source::new("gate.toml", POLICY))
        .0
        .expect("valid");
    let mut reader = std::io::BufReader::with_capacity(16, data);
    let mut raw = Vec::new();
    let mut number = 0;
    while let Ok(Some(line)) = gate::commands::check::next_line(&mut reader, &mut raw, 4096) {
        number += 1;
        if line.is_ok()
            && let Ok(text) = std::str::from_utf8(&raw)
            && let Err(d) = gate::commands::check::parse_line(text, number, std::path::Path::new("cal.jsonl"), &policy, &[])
        {
            assert!(d.line == number && d.column >= 1);
        }
    }
});
