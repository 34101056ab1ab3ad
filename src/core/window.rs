//! A post's time window (SPEC §7): `not_before` and `not_after`, read from the post file with
//! their positions, signed in the digest when present, and where an instant falls in them.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, Utc};
use toml::de::{DeTable, DeValue};

use crate::core::spanned::{Reader, type_name};

/// The hint for a date-time the window cannot take.
const DATETIME_HINT: &str =
    "write an offset date-time, e.g. `not_before = 2026-12-01T09:00:00+01:00` (or `...T08:00:00Z`)";

/// When a post may go out: never before `not_before`, never at or after `not_after`. Each keeps
/// the offset it was written with, for people; the digest signs the instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub not_before: Option<DateTime<FixedOffset>>,
    pub not_after: Option<DateTime<FixedOffset>>,
}

/// Where an instant falls in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Before `not_before`: it opens then.
    NotYet(DateTime<Utc>),
    Open,
    /// At or after `not_after`: it closed then and never opens again.
    Expired(DateTime<Utc>),
}

impl Window {
    pub fn is_empty(&self) -> bool {
        self.not_before.is_none() && self.not_after.is_none()
    }

    pub fn not_before_utc(&self) -> Option<DateTime<Utc>> {
        self.not_before.map(|t| t.with_timezone(&Utc))
    }

    pub fn not_after_utc(&self) -> Option<DateTime<Utc>> {
        self.not_after.map(|t| t.with_timezone(&Utc))
    }

    /// `[not_before, not_after)`: sendable exactly at `not_before`, expired exactly at
    /// `not_after`.
    pub fn position(&self, now: DateTime<Utc>) -> Position {
        if let Some(end) = self.not_after_utc()
            && now >= end
        {
            return Position::Expired(end);
        }
        match self.not_before_utc() {
            Some(start) if now < start => Position::NotYet(start),
            _ => Position::Open,
        }
    }

    /// The digest block (SPEC §4, §7), appended after the media: one field per key present,
    /// `not_before` first, each the instant in UTC (RFC 3339, `Z`). Nothing without them, so a
    /// post without a window keeps its old message byte for byte.
    pub fn push_digest(&self, out: &mut String) {
        for (tag, at) in [
            ("not_before", self.not_before_utc()),
            ("not_after", self.not_after_utc()),
        ] {
            if let Some(at) = at {
                crate::core::reviewers::push_field(out, tag, &instant(at));
            }
        }
    }

    /// `2026-12-01T09:00:00+01:00 – 2026-12-01T12:00:00+01:00`, `from …`, `until …`, or
    /// `any time`, as written.
    pub fn describe(&self) -> String {
        let show = |t: DateTime<FixedOffset>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        match (self.not_before, self.not_after) {
            (Some(a), Some(b)) => format!("{} – {}", show(a), show(b)),
            (Some(a), None) => format!("from {}", show(a)),
            (None, Some(b)) => format!("until {}", show(b)),
            (None, None) => "any time".to_owned(),
        }
    }
}

/// An instant as gate prints and signs it: RFC 3339 in UTC, fractions only when present.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads `not_before` and `not_after` from a post file's top table, each checked where it is
/// written: a TOML offset date-time, and `not_after` later than `not_before`.
pub fn read(r: &mut Reader<'_>, root: &DeTable<'_>) -> Window {
    let not_before = offset_datetime(r, root, "not_before");
    let not_after = offset_datetime(r, root, "not_after");
    let mut window = Window {
        not_before: not_before.as_ref().map(|(t, _)| *t),
        not_after: not_after.as_ref().map(|(t, _)| *t),
    };
    if let (Some((start, _)), Some((end, span))) = (&not_before, &not_after)
        && end <= start
    {
        r.error(
            span.clone(),
            format!(
                "`not_after` ({}) is not later than `not_before` ({})",
                end.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                start.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        )
        .hint = Some("the window is `[not_before, not_after)`: make `not_after` the later instant, or remove one of them".into());
        window.not_after = None;
    }
    window
}

fn offset_datetime(
    r: &mut Reader<'_>,
    root: &DeTable<'_>,
    key: &str,
) -> Option<(DateTime<FixedOffset>, std::ops::Range<usize>)> {
    let (_, value) = Reader::get(root, key)?;
    let span = value.span();
    // A TOML date-time, or the same written as a string (as the policy's blackouts take it).
    let parsed;
    let d = match value.get_ref() {
        DeValue::Datetime(d) => d,
        DeValue::String(text) => match text.trim().parse::<toml::value::Datetime>() {
            Ok(d) => {
                parsed = d;
                &parsed
            }
            Err(_) => {
                r.error(span, format!("`{key}` = {text:?} is not a date-time"))
                    .hint = Some(DATETIME_HINT.into());
                return None;
            }
        },
        other => {
            let found = type_name(other);
            r.error(
                span,
                format!("`{key}` must be a date-time with an offset, found {found}"),
            )
            .hint = Some(DATETIME_HINT.into());
            return None;
        }
    };
    let (Some(date), Some(time)) = (d.date, d.time) else {
        r.error(
            span,
            format!("`{key}` must be a date and a time of day, found `{d}`"),
        )
        .hint = Some(DATETIME_HINT.into());
        return None;
    };
    let Some(offset) = d.offset else {
        r.error(
            span,
            format!("`{key}` = {d} has no offset: it is no one instant"),
        )
        .hint = Some(format!(
            "add the offset it is meant in, e.g. `{d}+01:00` or `{d}Z`; a post is sent once, at one instant, wherever gate runs"
        ));
        return None;
    };
    let minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i32::from(minutes),
    };
    let built = NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
    .zip(NaiveTime::from_hms_nano_opt(
        u32::from(time.hour),
        u32::from(time.minute),
        u32::from(time.second.unwrap_or(0)),
        time.nanosecond.unwrap_or(0),
    ))
    .zip(FixedOffset::east_opt(minutes * 60))
    .and_then(|((date, time), zone)| date.and_time(time).and_local_timezone(zone).single());
    match built {
        Some(t) => Some((t, span)),
        None => {
            r.error(span, format!("`{key}` = {d} is not a valid date-time"))
                .hint = Some(DATETIME_HINT.into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn a_window_is_closed_at_its_start_and_open_at_its_end() {
        let w = Window {
            not_before: Some(at("2026-12-01T09:00:00+01:00")),
            not_after: Some(at("2026-12-01T12:00:00+01:00")),
        };
        let utc = |t: &str| at(t).with_timezone(&Utc);
        assert_eq!(
            w.position(utc("2026-12-01T07:59:59Z")),
            Position::NotYet(utc("2026-12-01T08:00:00Z"))
        );
        assert_eq!(w.position(utc("2026-12-01T08:00:00Z")), Position::Open);
        assert_eq!(w.position(utc("2026-12-01T10:59:59Z")), Position::Open);
        assert_eq!(
            w.position(utc("2026-12-01T11:00:00Z")),
            Position::Expired(utc("2026-12-01T11:00:00Z"))
        );
        assert_eq!(
            Window::default().position(utc("2026-12-01T11:00:00Z")),
            Position::Open
        );
    }

    #[test]
    fn the_digest_block_signs_the_instant_and_is_empty_without_a_window() {
        let mut out = String::new();
        Window::default().push_digest(&mut out);
        assert_eq!(out, "");
        let w = Window {
            not_before: Some(at("2026-12-01T09:00:00+01:00")),
            not_after: Some(at("2026-12-01T12:00:00.5+01:00")),
        };
        w.push_digest(&mut out);
        assert_eq!(
            out,
            "not_before 20\n2026-12-01T08:00:00Z\nnot_after 24\n2026-12-01T11:00:00.500Z\n"
        );
        let mut only_end = String::new();
        Window {
            not_before: None,
            ..w
        }
        .push_digest(&mut only_end);
        assert_eq!(only_end, "not_after 24\n2026-12-01T11:00:00.500Z\n");
    }
}
