//! Printing around a prompt without garbling it.
//!
//! When a message from another client arrives while the menu waits for
//! input, it must not land in the middle of the prompt. On a terminal the
//! console clears the prompt line (`\r\x1b[K`), prints the message and prints
//! the prompt again. When stdout is not a terminal (a pipe, a test) there is
//! nothing to clear: prompts and messages are plain lines.

use std::io::{self, IsTerminal, Write};

/// Writes lines and prompts to stdout; see the [module docs](self).
#[derive(Debug)]
pub struct Console {
    terminal: bool,
    prompt: Option<String>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new(io::stdout().is_terminal())
    }
}

impl Console {
    /// A console that redraws prompts (`terminal`) or prints plain lines.
    pub fn new(terminal: bool) -> Console {
        Console { terminal, prompt: None }
    }

    /// Shows `prompt` and remembers it until [`input_received`](Self::input_received).
    pub fn prompt(&mut self, prompt: &str) {
        if self.terminal {
            write_out(prompt);
        } else {
            write_out(&format!("{prompt}\n"));
        }
        self.prompt = Some(prompt.to_string());
    }

    /// The user answered the prompt (their Enter already moved to a new line).
    pub fn input_received(&mut self) {
        self.prompt = None;
    }

    /// Prints `text` as its own line(s), keeping a pending prompt intact.
    pub fn line(&mut self, text: &str) {
        match (&self.prompt, self.terminal) {
            (Some(prompt), true) => write_out(&format!("{}{text}\n{prompt}", clear_line(prompt))),
            _ => write_out(&format!("{text}\n")),
        }
    }
}

/// Returns the cursor to the start of the prompt line and blanks it: the ANSI
/// "erase line" on Unix terminals; spaces on Windows, whose classic console
/// shows escape sequences literally unless VT processing was switched on.
fn clear_line(prompt: &str) -> String {
    if cfg!(windows) {
        format!("\r{}\r", " ".repeat(prompt.chars().count()))
    } else {
        "\r\x1b[K".to_string()
    }
}

/// Writes and flushes stdout, ignoring errors (a closed pipe has no reader to tell).
fn write_out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
