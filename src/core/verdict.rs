//! The outcome of judging a post (`Verdict`) and the weight of one finding (`Severity`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The outcome for a post; ordered so that the strongest verdict is the greatest
/// (SPEC §2: frozen, then deny, then review, then hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Hold,
    Review,
    Deny,
    Frozen,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Hold => "hold",
            Verdict::Review => "review",
            Verdict::Deny => "deny",
            Verdict::Frozen => "frozen",
        }
    }
}

impl FromStr for Verdict {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "allow" => Ok(Verdict::Allow),
            "hold" => Ok(Verdict::Hold),
            "review" => Ok(Verdict::Review),
            "deny" => Ok(Verdict::Deny),
            "frozen" => Ok(Verdict::Frozen),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a finding weighs; `warn` is reported and blocks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    Hold,
    Review,
    Deny,
    Frozen,
}

impl Severity {
    pub fn verdict(self) -> Verdict {
        match self {
            Severity::Warn => Verdict::Allow,
            Severity::Hold => Verdict::Hold,
            Severity::Review => Verdict::Review,
            Severity::Deny => Verdict::Deny,
            Severity::Frozen => Verdict::Frozen,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Hold => "hold",
            Severity::Review => "review",
            Severity::Deny => "deny",
            Severity::Frozen => "frozen",
        }
    }
}
