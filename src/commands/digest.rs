//! `gate digest`: print the exact bytes a reviewer signs for a post file.

use crate::cli::DigestArgs;
use crate::commands::Ctx;
use crate::error::{Code, Error};

pub fn run(ctx: &Ctx, args: &DigestArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let post = crate::inputs::load_post(&args.file, &policy)
        .map_err(|diagnostics| Error::Input { diagnostics })?;
    let message = post.digest_message(&post.accounts);
    if ctx.global.json {
        ctx.print.json(&serde_json::json!({
            "file": args.file.display().to_string(),
            "namespace": crate::core::reviewers::NAMESPACE,
            "message": message,
        }))?;
    } else {
        // The raw bytes, so `gate digest --file F | ssh-keygen -Y sign ...` signs exactly them.
        ctx.print.bytes(message.as_bytes())?;
    }
    Ok(Code::Ok)
}
