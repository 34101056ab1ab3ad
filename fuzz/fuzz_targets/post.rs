//! The post-file reader (and the digest of what it reads) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

const POLICY: &str = "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n[accounts.x]\nplatform = \"x\"\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = gate::files::utf8("p.post.toml", data.to_vec(), "the post file") else {
        return;
    };
    let policy = gate::core::policy::parse(&gate::core::diagnostic::Source::new("gate.toml", POLICY))
        .0
        .expect("valid");
    let source = gate::core::diagnostic::Source::new("p.post.toml", text);
    if let Ok(post) = gate::inputs::parse_post(&source, std::path::Path::new("p.post.toml"), &policy) {
        let _ = post.digest_message(&post.accounts);
    }
});
