//! Printing: tables, JSON, notes, errors, and progress drawn only where a person watches.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::Output;

pub const GREEN: Style = AnsiColor::Green.on_default();
pub const RED: Style = AnsiColor::Red.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

/// A cell of a table, with the style it is shown in on a terminal.
pub struct Cell(pub String, pub Style);

impl Cell {
    pub fn plain(s: impl Into<String>) -> Cell {
        Cell(s.into(), Style::new())
    }
    /// A status, green when active, red when failed, yellow while an operation runs.
    pub fn status(s: &str) -> Cell {
        Cell(s.to_string(), status_style(s))
    }
}

pub fn status_style(s: &str) -> Style {
    match s {
        "Active" | "OPEN" | "Enabled" => GREEN,
        s if s.ends_with("Failed") => RED,
        "" => Style::new(),
        _ => YELLOW,
    }
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Exit status of a process whose reader went away (as if killed by SIGPIPE).
const EXIT_BROKEN_PIPE: i32 = 128 + 13;

/// Writes to stdout; when the reader has gone (`stratus fn logs -f | head`), ends the process instead of going on.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
}

/// How this process prints.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub output: Output,
    colour_out: bool,
    colour_err: bool,
    progress: bool,
}

impl Ui {
    pub fn new(output: Output) -> Ui {
        let allowed = colour_allowed();
        let err_tty = std::io::stderr().is_terminal();
        Ui {
            output,
            colour_out: allowed && std::io::stdout().is_terminal(),
            colour_err: allowed && err_tty,
            progress: output == Output::Table && err_tty,
        }
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    fn paint(on: bool, text: &str, style: Style) -> String {
        if on && style != Style::new() {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    /// `text` in `style` when stdout is a colour terminal.
    pub fn out_paint(&self, text: &str, style: Style) -> String {
        Self::paint(self.colour_out, text, style)
    }

    /// `text` in `style` when stderr is a colour terminal.
    pub fn err_paint(&self, text: &str, style: Style) -> String {
        Self::paint(self.colour_err, text, style)
    }

    /// A JSON document on stdout.
    pub fn print_json(&self, v: &Value) {
        let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
        emit(&format!("{text}\n"));
    }

    /// One JSON record on a line of stdout (for streams of records).
    pub fn print_json_line(&self, v: &Value) {
        emit(&format!("{v}\n"));
    }

    /// A line on stdout.
    pub fn line(&self, text: &str) {
        emit(&format!("{text}\n"));
    }

    /// Aligned columns on stdout, with a bold header on a terminal.
    pub fn table(&self, headers: &[&str], rows: &[Vec<Cell>]) {
        let text = render_table(headers, rows, |t, style| self.out_paint(t, style));
        emit(&text);
    }

    /// A remark for people on stderr (nothing with `--output json`); above the bar when one is drawn.
    pub fn note(&self, bar: Option<&ProgressBar>, text: &str) {
        if self.json() {
            return;
        }
        match bar {
            Some(b) if self.progress && !b.is_hidden() => b.println(text),
            _ => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    /// A failure: on stderr, and with `--output json` also as `{"Error":{"Code","Message"}}` on stdout.
    pub fn error(&self, e: &anyhow::Error) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {e:#}", self.err_paint("error:", RED.bold()));
        if self.json() {
            let (code, message) = match e.downcast_ref::<client::Error>() {
                Some(client::Error::Api { code, message, .. }) => (code.clone(), message.clone()),
                _ => ("ClientError".to_string(), format!("{e:#}")),
            };
            self.print_json(&serde_json::json!({"Error": {"Code": code, "Message": message}}));
        }
    }

    /// A spinner with `msg` (hidden unless progress is drawn).
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}") {
            b.set_style(style);
        }
        b.set_message(msg.to_string());
        b.enable_steady_tick(Duration::from_millis(80));
        b
    }

    /// A bar of bytes sent (hidden unless progress is drawn).
    pub fn bytes_bar(&self, total: u64, msg: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(msg.to_string());
        b
    }
}

/// Columns two spaces apart, each as wide as its widest cell (the last one unpadded), one line each.
fn render_table(
    headers: &[&str],
    rows: &[Vec<Cell>],
    paint: impl Fn(&str, Style) -> String,
) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.0.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<(&str, Style)>| {
        let n = cells.len();
        for (i, (t, style)) in cells.into_iter().enumerate() {
            text.push_str(&paint(t, style));
            if i + 1 < n {
                let w = widths.get(i).copied().unwrap_or(0);
                text.push_str(&" ".repeat(w.saturating_sub(t.chars().count()) + 2));
            }
        }
        text.push('\n');
    };
    line(headers.iter().map(|h| (*h, BOLD)).collect());
    for r in rows {
        line(r.iter().map(|c| (c.0.as_str(), c.1)).collect());
    }
    text
}

/// Bytes for people: `512 B`, `3.4 KiB`, `1.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_sizes() {
        assert_eq!(status_style("Active"), GREEN);
        assert_eq!(status_style("CreateFailed"), RED);
        assert_eq!(status_style("Updating"), YELLOW);
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec![Cell::plain("hello"), Cell::status("Active")],
            vec![
                Cell::plain("a-much-longer-name"),
                Cell::status("CreateFailed"),
            ],
        ];
        let plain = render_table(&["NAME", "STATUS"], &rows, |t, _| t.to_string());
        assert_eq!(
            plain,
            "NAME                STATUS\nhello               Active\na-much-longer-name  CreateFailed\n"
        );
        // Colour codes do not count towards the widths.
        let painted = render_table(&["NAME", "STATUS"], &rows, |t, s| Ui::paint(true, t, s));
        assert_eq!(painted.lines().count(), 3);
        assert!(painted.contains(&format!("hello{:15}{GREEN}Active{GREEN:#}", "")));
    }

    #[test]
    fn plain_paint_without_a_terminal() {
        assert_eq!(Ui::paint(false, "x", RED), "x");
        assert_eq!(Ui::paint(true, "x", RED), format!("{RED}x{RED:#}"));
    }
}
