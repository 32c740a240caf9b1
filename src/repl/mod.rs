//! `barsmith repl`: the script engine, interactively — for exploring and fixing
//! failing tickers (`failures(run_dir)`, `batch_log`, `request`, `fetch_minute_bars`,
//! `ingest`, `coverage`) and for looking at bars on disk (`load_bars`, then `filter`,
//! `resample`, `to_csv`...).
//!
//! On a terminal it reads with rustyline: history in the user's state directory,
//! multi-line input while a statement is unfinished, Tab completion, Ctrl-C that
//! cancels the line or the running evaluation, Ctrl-D to quit. With stdin not a
//! terminal (a pipe, a file) it reads plain lines with the same multi-line rule and
//! no prompt, so sessions can be scripted and tested.
//!
//! Evaluation runs on the main thread; Ctrl-C while it runs is a SIGINT whose handler
//! sets the cancel flag (`crate::batch::install_signal_handlers`): the engine's
//! progress hook aborts the script, blocking primitives (fetches, batch waits,
//! in-process ingest) return, running batches are stopped, and the prompt comes back.
//! While rustyline reads a line the terminal is raw and Ctrl-C is just a key.

pub mod commands;
pub mod input;
pub mod pretty;
pub mod session;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rhai::Dynamic;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Editor};

use crate::script::Host;
use crate::script::docs;

pub use input::{InScope, InputCheck, ReplHelper};
pub use session::{Reply, Session};

/// The prompt on a terminal.
pub const PROMPT: &str = "barsmith> ";

/// What `barsmith repl` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReplOptions {
    /// The run to diagnose: becomes the `run_dir` variable.
    pub run_dir: Option<PathBuf>,
    /// Script files loaded (like `:load`) before the first prompt.
    pub scripts: Vec<PathBuf>,
    /// History file; `None` keeps no history.
    pub history: Option<PathBuf>,
}

/// The history file in the user's state directory.
pub fn default_history() -> PathBuf {
    crate::budget::default_state_dir().join("repl_history")
}

/// Runs the REPL on `host` and returns its exit status: 0 after `:quit` or Ctrl-D,
/// the code of `exit(code)`; with piped input, 1 when some input failed.
pub fn run(host: Arc<Host>, opts: ReplOptions) -> i32 {
    let mut session = Session::new(host);
    if let Some(dir) = &opts.run_dir {
        session.set_var("run_dir", Dynamic::from(dir.display().to_string()));
    }
    let interactive = std::io::stdin().is_terminal();
    let mut failed = false;
    let mut code = None;
    for script in &opts.scripts {
        let reply = session.load(script);
        failed |= matches!(reply, Reply::Error(_) | Reply::Cancelled);
        if let Reply::Quit(c) = reply {
            code = Some(c);
            break;
        }
        show(reply);
    }
    let code = match code {
        Some(c) => c,
        None if interactive => interactive_loop(&mut session, &opts),
        None => match piped_loop(&mut session, std::io::stdin().lock()) {
            Some(c) => c,
            None => i32::from(failed),
        },
    };
    session.shut_down(code);
    code
}

/// Prints a reply: results on stdout, errors and `cancelled` on stderr.
fn show(reply: Reply) {
    match reply {
        Reply::Nothing | Reply::Quit(_) => {}
        Reply::Output(text) => println!("{text}"),
        Reply::Error(text) => eprintln!("{text}"),
        Reply::Cancelled => eprintln!("cancelled"),
    }
}

/// Reads complete inputs from non-terminal `input` (no prompt, same multi-line rule)
/// until it ends. Returns `Some(code)` after `:quit` or `exit(code)`, `Some(1)` when
/// some input failed, `None` when every input succeeded.
pub fn piped_loop(session: &mut Session, input: impl BufRead) -> Option<i32> {
    let check = InputCheck::new();
    let mut buffer = String::new();
    let mut failed = false;
    let mut lines = input.lines();
    loop {
        let line = lines.next();
        match &line {
            Some(Ok(l)) => {
                buffer.push_str(l);
                buffer.push('\n');
                if check.is_incomplete(&buffer) {
                    continue;
                }
            }
            Some(Err(e)) => {
                eprintln!("error: cannot read input: {e}");
                return Some(1);
            }
            None => {}
        }
        let reply = session.handle(&buffer);
        buffer.clear();
        failed |= matches!(reply, Reply::Error(_) | Reply::Cancelled);
        if let Reply::Quit(code) = reply {
            return Some(code);
        }
        show(reply);
        if line.is_none() {
            return failed.then_some(1);
        }
    }
}

/// The rustyline loop: prompt, history, completion; Ctrl-C clears the line, Ctrl-D quits.
fn interactive_loop(session: &mut Session, opts: &ReplOptions) -> i32 {
    let in_scope = Arc::new(Mutex::new(session.in_scope()));
    let mut primitives: Vec<String> = docs::primitives()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .collect();
    primitives.sort_unstable();
    primitives.dedup();
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(10_000)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| b.build())
        .unwrap_or_default();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot open the terminal for line editing: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(ReplHelper::new(
        primitives,
        session.methods(),
        Arc::clone(&in_scope),
    )));
    if let Some(path) = &opts.history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.load_history(path);
    }
    println!(
        "barsmith repl {} | :help for commands, Tab completes, Ctrl-C cancels, Ctrl-D quits",
        crate::VERSION
    );
    if let Some(dir) = &opts.run_dir {
        println!(
            "run_dir = {:?}; try failures(run_dir)",
            dir.display().to_string()
        );
    }
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &opts.history
                        && let Err(e) = editor.save_history(path)
                    {
                        tracing::debug!("cannot save the REPL history to {}: {e}", path.display());
                    }
                }
                let reply = session.handle(&line);
                *in_scope.lock().unwrap_or_else(PoisonError::into_inner) = session.in_scope();
                if let Reply::Quit(code) = reply {
                    return code;
                }
                show(reply);
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return 0,
            Err(e) => {
                eprintln!("error: cannot read input: {e}");
                return 1;
            }
        }
    }
}
