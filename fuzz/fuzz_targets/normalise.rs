//! The banned-term normaliser and matcher on arbitrary text: spans inside the text, on
//! character boundaries.
#![no_main]
use libfuzzer_sys::fuzz_target;

const POLICY: &str = "version = 1\n[banned_terms]\ndeny = [\"layoffs\", \"kill\", \"nobody here knows how to drive\"]\nallow = [\"kill switch\"]\n";

fuzz_target!(|text: &str| {
    let policy = gate::core::policy::parse(&gate::core::diagnostic::Source::new("gate.toml", POLICY))
        .0
        .expect("valid");
    let engine = gate::core::evaluate::Engine::new(&policy);
    let post = gate::core::post::Post::inline(gate::core::post::Origin::Argument, text.to_owned());
    let context = gate::core::evaluate::Context {
        now: chrono::DateTime::UNIX_EPOCH,
        local_freeze: None,
        sends: gate::core::limits::Sends::default(),
        instances: Default::default(),
    };
    for e in engine.evaluate(&post, &[], &context) {
        for f in &e.findings {
            if let (Some(start), Some(end)) = (f.start, f.end) {
                assert!(start <= end && end <= text.len());
                assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
            }
        }
    }
});
