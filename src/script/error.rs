//! Script errors as users see them: `file:line:col: message`, the source line and a
//! caret under the column — for syntax errors and runtime errors alike, pointing at
//! the innermost position (inside an imported module or a function), followed by the
//! chain of calls that led there. Never a Rust debug dump.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rhai::{Dynamic, EvalAltResult, Map, ParseError, Position};

/// Where script text comes from, to show source lines in errors.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The source name the main script was compiled with (its path as given).
    pub main_name: String,
    /// The main script's text.
    pub main_text: String,
    /// The folder `import` paths are resolved from.
    pub module_dir: Option<PathBuf>,
    /// The functions the engine knows, for "did you mean" in runtime errors (see
    /// [`crate::script::check::known_functions`]; may be empty).
    pub functions: Vec<String>,
}

impl Sources {
    /// The file name to show and the text of the source called `name` (an `import`
    /// path, or the main script's name).
    fn lookup(&self, name: Option<&str>) -> (String, Option<String>) {
        match name {
            None | Some("") => (self.main_name.clone(), Some(self.main_text.clone())),
            Some(n) if n == self.main_name => (n.to_string(), Some(self.main_text.clone())),
            Some(n) => {
                let path = self.module_file(n);
                let text = std::fs::read_to_string(&path).ok();
                (path.display().to_string(), text)
            }
        }
    }

    /// The file `import "path"` reads: relative to the main script's folder, `.rhai`
    /// added (as the engine's module resolver does).
    pub fn module_file(&self, import: &str) -> PathBuf {
        let mut path = match &self.module_dir {
            Some(dir) if Path::new(import).is_relative() && dir != Path::new(".") => {
                dir.join(import)
            }
            _ => PathBuf::from(import),
        };
        path.set_extension("rhai");
        path
    }
}

/// A message tied to a place in a script file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file, as shown (`scripts/lib.rhai`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What went wrong.
    pub message: String,
    /// The text of the line, when the file could be read.
    pub source_line: Option<String>,
    /// The calls and imports that led there, innermost first
    /// (`in call to function 'g' at main.rhai:7:9`).
    pub trace: Vec<String>,
}

impl Located {
    /// `message` at `pos` in the source called `name` (see [`Sources`]).
    pub(crate) fn at(
        sources: &Sources,
        name: Option<&str>,
        pos: Position,
        message: String,
    ) -> Located {
        let (file, text) = sources.lookup(name);
        let line = pos.line();
        let source_line =
            line.and_then(|l| text.as_deref()?.split('\n').nth(l - 1).map(str::to_string));
        Located {
            file,
            line,
            column: pos.position(),
            message,
            source_line,
            trace: Vec::new(),
        }
    }

    /// `file:line:col`, or as much of it as is known.
    pub fn place(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }

    fn render(&self) -> String {
        let mut out = format!("{}: {}", self.place(), self.message);
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string();
            let text = text.trim_end_matches('\r');
            let _ = write!(out, "\n {gutter} | {text}");
            if let Some(col) = self.column {
                // Keep tabs so the caret lines up under the same column in a terminal.
                let pad: String = text
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = write!(out, "\n {} | {pad}^", " ".repeat(gutter.len()));
            }
        }
        for t in &self.trace {
            let _ = write!(out, "\n  {t}");
        }
        out
    }
}

/// Why a script did not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The script file could not be read (missing, unreadable, too large, not text).
    #[error("script: {0}")]
    Read(#[from] crate::input::InputError),
    /// The script does not parse.
    #[error("{}: {}", .0.place(), .0.message)]
    Syntax(Box<Located>),
    /// The script failed while running.
    #[error("{}: {}", .0.place(), .0.message)]
    Runtime(Box<Located>),
    /// `barsmith check` found problems (unknown functions, methods or option keys):
    /// the script was not started.
    #[error("{} problem(s) found by the check", .0.len())]
    Check(Vec<crate::script::check::Problem>),
    /// The command line did not match the script's flags (`args`).
    #[error("{message}")]
    Usage {
        /// What was wrong.
        message: String,
        /// The script's usage text.
        usage: String,
    },
    /// A run setting no batch can get past (bad rate, no API key, run folder in use):
    /// the run stops before starting (more) workers.
    #[error("{0}")]
    Setup(String),
    /// Stopped by Ctrl-C, SIGTERM or the REPL.
    #[error("cancelled")]
    Cancelled,
}

impl ScriptError {
    /// The error as shown to users: position, source line and caret for syntax and
    /// runtime errors; the message and the usage for flag errors.
    pub fn render(&self) -> String {
        match self {
            ScriptError::Syntax(l) | ScriptError::Runtime(l) => l.render(),
            ScriptError::Check(problems) => {
                let mut out: Vec<String> = problems.iter().map(|p| p.line()).collect();
                out.push(format!(
                    "{}; the script was not started",
                    crate::script::check::count(problems.len())
                ));
                out.join("\n")
            }
            ScriptError::Usage { message, usage } => format!("error: {message}\n\n{usage}"),
            ScriptError::Cancelled => "cancelled".to_string(),
            ScriptError::Setup(message) => format!("error: {message}"),
            e @ ScriptError::Read(_) => e.to_string(),
        }
    }

    /// The process exit status for this error: 2 for what the check finds before the
    /// script starts (syntax errors, unknown functions or options) and for flag errors, 4 for a setup error
    /// (as for a run halted on a fatal error), 128 + the signal
    /// when cancelled (130 for Ctrl-C, 143 for SIGTERM), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ScriptError::Usage { .. } | ScriptError::Syntax(_) | ScriptError::Check(_) => 2,
            ScriptError::Setup(_) => 4,
            ScriptError::Cancelled => crate::batch::last_signal().map_or(130, |s| 128 + s),
            _ => 1,
        }
    }

    /// A syntax error in the main script.
    pub fn from_parse(err: &ParseError, sources: &Sources) -> ScriptError {
        ScriptError::Syntax(Box::new(Located::at(
            sources,
            None,
            err.1,
            format!("syntax error: {}", err.0),
        )))
    }

    /// A runtime error, located at its innermost position.
    pub fn from_eval(err: &EvalAltResult, sources: &Sources) -> ScriptError {
        if matches!(innermost(err), EvalAltResult::ErrorTerminated(..)) {
            return ScriptError::Cancelled;
        }
        let mut trace = Vec::new();
        let (mut located, syntax) = locate(err, None, sources, &mut trace);
        trace.reverse();
        located.trace = trace;
        if syntax {
            ScriptError::Syntax(Box::new(located))
        } else {
            ScriptError::Runtime(Box::new(located))
        }
    }
}

fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        e => e,
    }
}

/// Walks down the wrappers to the innermost error, noting each call and import
/// (outermost first) in `trace`; returns the located error and whether it is a
/// syntax error.
fn locate(
    err: &EvalAltResult,
    source: Option<&str>,
    sources: &Sources,
    trace: &mut Vec<String>,
) -> (Located, bool) {
    let here = |pos: Position| Located::at(sources, source, pos, String::new()).place();
    match err {
        EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
            let what = if name.starts_with("anon$") {
                "in closure called".to_string()
            } else {
                format!("in function '{name}' called")
            };
            trace.push(format!("{what} at {}", here(*pos)));
            let next = if src.is_empty() {
                source
            } else {
                Some(src.as_str())
            };
            let (mut l, syntax) = locate(inner, next, sources, trace);
            if l.line.is_none() {
                l = Located::at(sources, source, *pos, l.message);
                trace.pop();
            }
            (l, syntax)
        }
        EvalAltResult::ErrorInModule(path, inner, pos) => {
            trace.push(format!("in module '{path}' imported at {}", here(*pos)));
            let (mut l, syntax) = locate(inner, Some(path.as_str()), sources, trace);
            if l.line.is_none() {
                l = Located::at(
                    sources,
                    source,
                    *pos,
                    format!("module '{path}': {}", l.message),
                );
                trace.pop();
            }
            (l, syntax)
        }
        EvalAltResult::ErrorParsing(p, pos) => (
            Located::at(sources, source, *pos, format!("syntax error: {p}")),
            true,
        ),
        e => (
            Located::at(sources, source, e.position(), message(e, sources)),
            false,
        ),
    }
}

/// The message of one (non-wrapper) error, without its position.
fn message(err: &EvalAltResult, sources: &Sources) -> String {
    match err {
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            crate::script::friendly::function_not_found(signature, &sources.functions)
        }
        EvalAltResult::ErrorRuntime(value, _) => thrown(value),
        EvalAltResult::ErrorTooManyOperations(_) => "too many operations".to_string(),
        EvalAltResult::ErrorStackOverflow(_) => {
            "too many nested function calls (infinite recursion?)".to_string()
        }
        e => {
            let text = e.to_string();
            let suffix = format!(" ({})", e.position());
            match text.strip_suffix(&suffix) {
                Some(t) if !e.position().is_none() => t.to_string(),
                _ => text,
            }
        }
    }
}

/// A thrown value as a message: strings as they are; a structured error map as
/// `message [class/kind]`; anything else printed.
fn thrown(value: &Dynamic) -> String {
    if value.is_unit() {
        return "error thrown with no value".to_string();
    }
    if let Some(map) = value.read_lock::<Map>()
        && let Some(msg) = map.get("message")
    {
        let tag: Vec<String> = ["class", "kind"]
            .iter()
            .filter_map(|k| {
                map.get(*k)
                    .filter(|v| !v.is_unit())
                    .map(ToString::to_string)
            })
            .collect();
        return if tag.is_empty() {
            msg.to_string()
        } else {
            format!("{msg} [{}]", tag.join("/"))
        };
    }
    value.to_string()
}
