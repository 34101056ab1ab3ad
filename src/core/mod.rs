//! The pure core: what a policy and a post say, and what gate decides about them.
//!
//! Nothing here does I/O, reads the clock or the environment, or names a shell module: the
//! shell (`commands`, `store`, `platforms`, `files`, ...) reads files and the clock and hands
//! the core bytes and facts. `.ci/run` keeps it so (`.ci/core-is-pure`).

pub mod diagnostic;
pub mod evaluate;
pub mod hours;
pub mod length;
pub mod limits;
pub mod links;
pub mod policy;
pub mod post;
pub mod reviewers;
pub mod spanned;
pub mod style;
pub mod target;
pub mod terms;
pub mod textmap;
pub mod verdict;
pub mod window;

#[cfg(test)]
mod evaluate_cases;
#[cfg(test)]
mod policy_cases;
