//! Safe terminal output for the CLI views: strings from plugins, peers and
//! the database are printed with their control characters escaped (an
//! escape sequence could clear the operator's screen, retitle the terminal
//! or forge lines), and a reader that goes away (`outpost history | head`)
//! ends the command quietly instead of panicking.
//!
//! This module only formats and writes; it decides nothing about what a
//! view shows.

use std::borrow::Cow;
use std::io::Write;

/// `text` with every control character (C0, DEL, C1, and the bidi
/// overrides that reorder what a line shows) written as a visible escape
/// (`\u{1b}`); tabs stay, since they cannot forge anything.
pub fn safe(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `text` to stdout; a closed pipe ends the process quietly with
/// the usual exit status of a writer whose reader left (141 in shells is
/// the signal; here exit code 0, nothing more to say).
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// For commands that only print (everything but `run`): a write to a
/// closed pipe ends the process like any Unix filter (SIGPIPE), instead of
/// `println!` panicking on the error. The agent itself keeps SIGPIPE
/// ignored, so a peer closing a socket never kills it.
pub fn die_on_closed_pipe() {
    // SAFETY: resetting a signal disposition to its default at start,
    // before any thread that could race on it is spawned by us.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(safe("plain text\tok"), "plain text\tok");
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(safe("x\ny\rz"), "x\\u{a}y\\u{d}z");
        assert_eq!(safe("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(safe("\u{202e}txt"), "\\u{202e}txt");
        assert_eq!(safe("é ✓"), "é ✓");
    }
}
