//! The few colours gate uses, a leaf every renderer (diagnostics, commands) shares.

use anstyle::{AnsiColor, Style};

/// The few styles gate uses, so every command colours the same things the same way.
pub struct Styles {
    pub error: Style,
    pub warning: Style,
    pub ok: Style,
    pub hold: Style,
    pub bold: Style,
    pub blue: Style,
    pub dim: Style,
}

pub const STYLES: Styles = Styles {
    error: AnsiColor::Red.on_default().bold(),
    warning: AnsiColor::Yellow.on_default().bold(),
    ok: AnsiColor::Green.on_default().bold(),
    hold: AnsiColor::Magenta.on_default().bold(),
    bold: Style::new().bold(),
    blue: AnsiColor::Blue.on_default().bold(),
    dim: Style::new().dimmed(),
};
