//! One REPL session: the engine, the variables (a `Scope`) and the functions defined
//! so far (an accumulated AST whose statements are cleared after each input) — the
//! state model of rhai's own REPL — plus the `:` commands.
//!
//! A [`Session`] knows nothing about terminals: [`Session::handle`] takes one
//! complete input and returns a [`Reply`] for the front end to print.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};

use crate::repl::commands::{self, Command};
use crate::repl::pretty;
use crate::script::docs;
use crate::script::error::Sources;
use crate::script::host::{Ending, Host};
use crate::script::{ScriptError, engine};

/// What one input produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to show (a statement, or a `()` result).
    Nothing,
    /// A result or command output, for standard output.
    Output(String),
    /// An error (one line, or a located error with its caret), for standard error.
    Error(String),
    /// Ctrl-C stopped the evaluation; running batches were stopped.
    Cancelled,
    /// Leave the REPL with this exit status (`:quit`, `exit(code)`).
    Quit(i32),
}

/// The state of one REPL.
pub struct Session {
    host: Arc<Host>,
    engine: Engine,
    scope: Scope<'static>,
    /// Functions of every input so far (statements cleared).
    functions: AST,
    inputs: usize,
    /// The text of every input and loaded file by source name (`input[3]`), to show
    /// the right line when a function defined earlier fails.
    texts: HashMap<String, String>,
    /// The source name that last defined each script function.
    defined: HashMap<String, String>,
}

/// Exit status after SIGTERM (128 + 15).
const TERMINATED: i32 = 128 + libc::SIGTERM;

/// True once SIGTERM arrived: the REPL ends instead of going back to the prompt.
fn terminated() -> bool {
    crate::batch::last_signal() == Some(libc::SIGTERM)
}

/// Longest wait for batches to stop after Ctrl-C before giving the prompt back.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl Session {
    /// A session on `host`, with the engine every entry point uses.
    pub fn new(host: Arc<Host>) -> Session {
        Session {
            engine: engine::build(Arc::clone(&host)),
            host,
            scope: Scope::new(),
            functions: AST::empty(),
            inputs: 0,
            texts: HashMap::new(),
            defined: HashMap::new(),
        }
    }

    /// The host (settings, cancel flag, batch runner).
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Defines variable `name` (shadowing an earlier one of that name).
    pub fn set_var(&mut self, name: &str, value: Dynamic) {
        self.scope.push_dynamic(name.to_string(), value);
    }

    /// Variables in scope (with their script types) and script functions, for
    /// completion.
    pub fn in_scope(&self) -> crate::repl::input::InScope {
        let types = self
            .scope
            .iter()
            .map(|(n, _, v)| (n.to_string(), docs::script_type(v.type_name())))
            .collect();
        crate::repl::input::InScope {
            names: self.names(),
            types,
        }
    }

    /// Every method and property of the session's engine, as `(receiver type, name)`.
    pub fn methods(&self) -> Vec<(String, String)> {
        docs::methods(&self.engine)
    }

    /// Variables in scope and script functions, for completion.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scope.iter().map(|(n, _, _)| n.to_string()).collect();
        names.extend(self.functions.iter_functions().map(|f| f.name.to_string()));
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Handles one complete input: a `:` command or Rhai code.
    pub fn handle(&mut self, input: &str) -> Reply {
        let text = input.trim();
        if text.is_empty() {
            return Reply::Nothing;
        }
        if text.starts_with(':') {
            return match commands::parse(text) {
                Ok(cmd) => self.command(cmd),
                Err(message) => Reply::Error(message),
            };
        }
        self.inputs += 1;
        self.eval(&format!("input[{}]", self.inputs), input)
    }

    fn command(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Help => Reply::Output(commands::help()),
            Command::Fns(filter) => self.fns(filter.as_deref()),
            Command::Doc(name) => self.doc(&name),
            Command::Load(file) => self.load(Path::new(&file)),
            Command::Vars => Reply::Output(self.vars()),
            Command::Quit => Reply::Quit(0),
        }
    }

    fn fns(&self, filter: Option<&str>) -> Reply {
        let found = docs::matching(filter);
        if found.is_empty() {
            return Reply::Error(format!(
                "no primitive matches '{}'; try :fns with a theme or part of a name",
                filter.unwrap_or_default()
            ));
        }
        Reply::Output(docs::render_text(&found).trim_end().to_string())
    }

    fn doc(&self, name: &str) -> Reply {
        let name = name.trim_end_matches("()");
        let found: Vec<_> = docs::primitives()
            .into_iter()
            .filter(|d| d.name == name)
            .collect();
        if !found.is_empty() {
            return Reply::Output(docs::render_text(&found).trim_end().to_string());
        }
        let script: Vec<String> = self
            .functions
            .iter_functions()
            .filter(|f| f.name == name)
            .map(|f| {
                let doc = f
                    .comments
                    .iter()
                    .map(|c| c.trim_start_matches("///").trim())
                    .collect::<Vec<_>>()
                    .join("\n      ");
                let sig = format!("{}({}) (script function)", f.name, f.params.join(", "));
                if doc.is_empty() {
                    sig
                } else {
                    format!("{sig}\n      {doc}")
                }
            })
            .collect();
        if script.is_empty() {
            let close: Vec<String> = docs::matching(Some(name))
                .into_iter()
                .map(|d| d.name)
                .collect();
            let hint = if close.is_empty() {
                "; :fns lists every primitive".to_string()
            } else {
                format!("; did you mean {}?", close.join(", "))
            };
            return Reply::Error(format!("no primitive or function named '{name}'{hint}"));
        }
        Reply::Output(script.join("\n"))
    }

    fn vars(&self) -> String {
        let mut out = String::new();
        if self.scope.is_empty() {
            out.push_str("no variables yet\n");
        }
        for (name, constant, value) in self.scope.iter() {
            let shown = pretty::one_line(&self.engine, &value, 60);
            let type_name = self.engine.map_type_name(value.type_name());
            let kind = if constant { "const" } else { "let" };
            let _ = writeln!(out, "{kind} {name}: {type_name} = {shown}");
        }
        let fns: Vec<String> = self
            .functions
            .iter_functions()
            .map(|f| format!("{}({})", f.name, f.params.join(", ")))
            .collect();
        if !fns.is_empty() {
            let _ = writeln!(out, "functions: {}", fns.join(", "));
        }
        out.trim_end().to_string()
    }

    /// Runs the script file `path` in this session (`:load`): its functions and
    /// top-level variables stay.
    pub fn load(&mut self, path: &Path) -> Reply {
        let text = match crate::input::read_text(path, crate::input::InputKind::Script) {
            Ok(t) => t,
            Err(e) => return Reply::Error(format!(":load: {e}")),
        };
        self.eval(&path.display().to_string(), &text)
    }

    /// Compiles `text` against the current variables, adds its functions to the
    /// session and runs its statements.
    fn eval(&mut self, name: &str, text: &str) -> Reply {
        if terminated() {
            return Reply::Quit(TERMINATED);
        }
        self.host.cancel_flag().reset();
        let sources = Sources {
            main_name: name.to_string(),
            main_text: text.to_string(),
            module_dir: None,
            functions: crate::script::check::known_functions(&self.engine)
                .into_iter()
                .chain(self.defined.keys().cloned())
                .collect(),
        };
        let mut ast = match self.engine.compile_with_scope(&self.scope, text) {
            Ok(ast) => ast,
            Err(e) => {
                return Reply::Error(ScriptError::from_parse(&e, &sources).render());
            }
        };
        ast.set_source(name);
        self.texts.insert(name.to_string(), text.to_string());
        for f in ast.iter_functions() {
            self.defined.insert(f.name.to_string(), name.to_string());
        }
        let merged = self.functions.merge(&ast);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &merged);
        self.functions = merged;
        self.functions.clear_statements();
        let ending = self.host.take_ending();
        if self.host.is_cancelled() {
            self.stop_batches();
            if terminated() {
                return Reply::Quit(TERMINATED);
            }
            self.host.cancel_flag().reset();
            return Reply::Cancelled;
        }
        match (result, ending) {
            (_, Some(Ending::Exit(code))) => Reply::Quit(code),
            (_, Some(Ending::Usage { message, usage })) => {
                Reply::Error(format!("error: {message}\n\n{usage}"))
            }
            (_, Some(Ending::Setup(message))) => Reply::Error(format!("error: {message}")),
            (Err(e), None) if matches!(*e, EvalAltResult::Exit(..)) => Reply::Quit(0),
            (Err(e), None) => match self.locate(&e, &sources) {
                ScriptError::Cancelled => Reply::Cancelled,
                err => Reply::Error(err.render()),
            },
            (Ok(v), None) if v.is_unit() => Reply::Nothing,
            (Ok(v), None) => Reply::Output(pretty::render(&self.engine, &v)),
        }
    }

    /// `err` located for the user. An error inside a function defined by an earlier
    /// input (or a loaded file) points at that input's line: rhai names the source of
    /// the latest input for every function of the merged AST, so the session keeps
    /// which input defined each function.
    fn locate(&self, err: &EvalAltResult, sources: &Sources) -> ScriptError {
        let mut located = ScriptError::from_eval(err, sources);
        let mut innermost = None;
        let mut e = err;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = e {
            innermost = Some(name.as_str());
            e = inner;
        }
        let defined = innermost
            .and_then(|f| self.defined.get(f))
            .filter(|source| **source != sources.main_name)
            .and_then(|source| self.texts.get_key_value(source));
        if let (ScriptError::Runtime(l), Some((source, text))) = (&mut located, defined) {
            l.file = source.clone();
            l.source_line = l
                .line
                .and_then(|n| text.split('\n').nth(n.checked_sub(1)?))
                .map(str::to_string);
        }
        located
    }

    /// After Ctrl-C: waits (bounded) until the batch runner has stopped every running
    /// batch (it watches the same cancel flag: TERM, then KILL after the grace period).
    fn stop_batches(&self) {
        let Some(runner) = self.host.existing_runner() else {
            return;
        };
        let deadline = Instant::now() + STOP_WAIT;
        let mut told = false;
        while runner.running() > 0 && Instant::now() < deadline {
            if !told {
                self.host.log(&format!(
                    "stopping {} running batch(es)...",
                    runner.running()
                ));
                told = true;
            }
            std::thread::sleep(crate::batch::CHECK_INTERVAL);
        }
    }

    /// Ends the session: stops batches still running and writes their run records.
    pub fn shut_down(&self, code: i32) {
        self.host.shut_down(code);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::sync::Mutex;

    use super::*;
    use crate::batch::CancelFlag;
    use crate::script::{HostConfig, Output};

    pub fn session() -> Session {
        let config = HostConfig {
            cancel: CancelFlag::new(),
            ..HostConfig::default()
        };
        Session::new(Host::with_output(
            config,
            Output::Capture(Arc::new(Mutex::new(String::new()))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::session;
    use super::*;

    #[test]
    fn variables_and_functions_persist_between_inputs() {
        let mut s = session();
        assert_eq!(s.handle("let x = 40;"), Reply::Nothing);
        assert_eq!(s.handle("fn add2(v) { v + 2 }"), Reply::Nothing);
        assert_eq!(s.handle("add2(x)"), Reply::Output("42".into()));
        assert_eq!(s.handle("x = add2(x); x"), Reply::Output("42".into()));
        assert!(s.names().contains(&"add2".to_string()));
        assert!(s.handle(":vars") == Reply::Output("let x: i64 = 42\nfunctions: add2(v)".into()));
    }

    #[test]
    fn errors_point_at_the_input_with_a_caret() {
        let mut s = session();
        let Reply::Error(e) = s.handle("let y = 1;\ny + nope") else {
            panic!("no error");
        };
        assert!(e.starts_with("input[1]:2:5:"), "{e}");
        assert!(e.contains(" 2 | y + nope\n   |     ^"), "{e}");
        let Reply::Error(e) = s.handle(r#"throw "boom""#) else {
            panic!("no error");
        };
        assert!(e.contains("boom"), "{e}");
    }

    #[test]
    fn an_error_inside_a_function_defined_earlier_shows_that_functions_line() {
        let mut s = session();
        s.handle("fn f(x) {\n  let y = x;\n  throw \"boom\";\n}");
        let Reply::Error(e) = s.handle("let z = 1;\nlet w = 2;\nf(z + w)") else {
            panic!("no error");
        };
        assert!(
            e.starts_with("input[1]:3:3: boom\n 3 |   throw \"boom\";\n   |   ^"),
            "{e}"
        );
        assert!(e.ends_with("in function 'f' called at input[2]:3:1"), "{e}");
    }

    #[test]
    fn bad_commands_and_missing_files_are_one_line_errors() {
        let mut s = session();
        for input in [":nope", ":load /no/such/file.rhai", ":doc zzz"] {
            let Reply::Error(e) = s.handle(input) else {
                panic!("{input}: no error");
            };
            assert!(!e.contains('\n'), "{input}: {e}");
        }
        assert_eq!(s.handle(":quit"), Reply::Quit(0));
        assert_eq!(s.handle("exit(3)"), Reply::Quit(3));
    }
}
