//! Diagnostics for people (the source line, underlined, and what to do) and
//! for tools (JSON with code, message, file, line and column).

use std::fmt::Write;

use partitioner::diag::{line_col, Diagnostic};

use crate::Loaded;

/// The source line holding `offset`, with the line's start offset.
fn line_at(source: &str, offset: usize) -> (&str, usize) {
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    (&source[start..end], start)
}

fn one(out: &mut String, file: &str, source: &str, d: &Diagnostic) {
    let (line, col) = line_col(source, d.span.start);
    let (text, line_start) = line_at(source, d.span.start);
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "error[{}]: {}", d.code.as_str(), d.message);
    let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{line} | {text}");
    // Underline up to the span's end or the end of its first line.
    let first_line_end = line_start + text.len();
    let end = d.span.end.clamp(d.span.start, first_line_end);
    let lead: String = source[line_start..d.span.start.min(first_line_end)]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks = source[d.span.start.min(first_line_end)..end]
        .chars()
        .count()
        .max(1);
    let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(marks));
    for (span, note) in &d.notes {
        let (l, c) = line_col(source, span.start);
        let _ = writeln!(out, "{pad} = note: {note} at {file}:{l}:{c}");
    }
    let _ = writeln!(out, "{pad} = help: {}", d.help);
}

/// Every diagnostic for a person, then a count.
pub(crate) fn human(loaded: &Loaded) -> String {
    let file = loaded.path.display().to_string();
    let mut out = String::new();
    for d in &loaded.diags {
        one(&mut out, &file, &loaded.source, d);
        out.push('\n');
    }
    let n = loaded.diags.len();
    let _ = writeln!(
        out,
        "error: {file}: {n} problem{} found",
        if n == 1 { "" } else { "s" }
    );
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON object: `{"file": ..., "valid": bool, "diagnostics": [...]}`.
pub(crate) fn json(loaded: &Loaded) -> String {
    let file = loaded.path.display().to_string();
    let items: Vec<String> = loaded
        .diags
        .iter()
        .map(|d| {
            let (line, column) = line_col(&loaded.source, d.span.start);
            let (end_line, end_column) = line_col(&loaded.source, d.span.end);
            format!(
                "{{\"code\":{},\"message\":{},\"file\":{},\"line\":{line},\"column\":{column},\
                 \"end_line\":{end_line},\"end_column\":{end_column},\"help\":{}}}",
                json_string(d.code.as_str()),
                json_string(&d.message),
                json_string(&file),
                json_string(&d.help)
            )
        })
        .collect();
    format!(
        "{{\"file\":{},\"valid\":{},\"diagnostics\":[{}]}}",
        json_string(&file),
        loaded.diags.is_empty(),
        items.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn line_at_finds_the_whole_line() {
        let src = "one\ntwo three\nfour";
        assert_eq!(line_at(src, 6), ("two three", 4));
        assert_eq!(line_at(src, src.len()), ("four", 14));
    }
}
