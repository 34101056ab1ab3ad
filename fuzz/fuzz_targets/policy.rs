//! The policy reader on arbitrary bytes: never a panic; every error placed or whole-file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = gate::files::utf8("gate.toml", data.to_vec(), "the policy file") else {
        return;
    };
    let (policy, diagnostics) = gate::core::policy::parse(&gate::core::diagnostic::Source::new("gate.toml", text));
    assert!(policy.is_some() || diagnostics.iter().any(|d| d.is_error()));
});
