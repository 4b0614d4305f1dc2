//! klog's text header: `I1124 22:13:05.123456   12345 file.rs:42] message key=value`.

use std::fmt;

use time::OffsetDateTime;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The klog line format.
#[derive(Debug, Clone, Default)]
pub struct Klog {
    /// `--skip_headers`: the message alone.
    pub skip_headers: bool,
    /// `--add_dir_header`: the source file with its directory.
    pub add_dir_header: bool,
}

fn severity(level: &Level) -> char {
    match *level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        _ => 'I',
    }
}

impl Klog {
    /// Writes the header for an event at `level` from `file:line`, at `now`, by process `pid`.
    pub fn write_header(
        &self,
        out: &mut impl fmt::Write,
        level: &Level,
        now: OffsetDateTime,
        pid: u32,
        file: &str,
        line: u32,
    ) -> fmt::Result {
        let file = if self.add_dir_header {
            file
        } else {
            file.rsplit('/').next().unwrap_or(file)
        };
        write!(
            out,
            "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {pid:>7} {file}:{line}] ",
            severity(level),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.microsecond(),
        )
    }
}

impl<S, N> FormatEvent<S, N> for Klog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.skip_headers {
            let meta = event.metadata();
            let file = meta.file().unwrap_or("unknown");
            self.write_header(
                &mut writer,
                meta.level(),
                OffsetDateTime::now_utc(),
                std::process::id(),
                file,
                meta.line().unwrap_or(0),
            )?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        // Span fields (the unit of work: a sync, a request) close the line, as klog's key=value.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span
                    .extensions()
                    .get::<tracing_subscriber::fmt::FormattedFields<N>>()
                {
                    if !fields.is_empty() {
                        write!(writer, " {fields}")?;
                    }
                }
            }
        }
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn header_matches_klog() {
        let mut line = String::new();
        let at = datetime!(2026-11-24 22:13:05.123456 UTC);
        Klog::default()
            .write_header(
                &mut line,
                &Level::INFO,
                at,
                12345,
                "apps/sidecar/src/main.rs",
                42,
            )
            .unwrap();
        assert_eq!(line, "I1124 22:13:05.123456   12345 main.rs:42] ");
    }

    #[test]
    fn severities_and_directories() {
        let mut line = String::new();
        let at = datetime!(2026-01-02 03:04:05.000007 UTC);
        let format = Klog {
            add_dir_header: true,
            ..Klog::default()
        };
        format
            .write_header(&mut line, &Level::ERROR, at, 1, "src/a.rs", 7)
            .unwrap();
        assert_eq!(line, "E0102 03:04:05.000007       1 src/a.rs:7] ");
        line.clear();
        Klog::default()
            .write_header(&mut line, &Level::WARN, at, 1, "src/a.rs", 7)
            .unwrap();
        assert!(line.starts_with('W'));
    }
}
