//! The static check of a script, run by `barsmith check` and by `barsmith run` before
//! anything starts: syntax errors, calls to functions that do not exist, methods no
//! function can take, and unknown keys in literal option maps of primitives — each
//! with its `file:line:col` and the closest known name.
//!
//! Known names are the engine's registered functions (primitives and Rhai's
//! built-ins, from its metadata), Rhai's keyword functions, the functions the script
//! defines and, for `alias::name` calls, the public functions of the module it
//! imports. The check prefers silence to a false alarm: a call through a variable
//! (a function pointer) or a method named like a map key (a closure stored in a map)
//! is never reported.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rhai::{AST, ASTNode, Engine, Expr, FnAccess, FnCallExpr, OptimizationLevel, Position, Stmt};

use crate::input::{InputError, InputKind};
use crate::script::error::{Located, ScriptError, Sources};
use crate::script::host::{Host, HostConfig, ScriptInfo};
use crate::script::primitives::option_keys;
use crate::script::suggest::did_you_mean;

/// Functions the Rhai engine handles itself: callable, but never registered.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// One problem the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where (file, line, column, source line) and what.
    pub at: Located,
    /// A syntax error: nothing after it in that file was checked.
    pub syntax: bool,
}

impl Problem {
    /// The problem as compilers print one: `path:line:col: error: message`.
    pub fn line(&self) -> String {
        format!("{}: error: {}", self.at.place(), self.at.message)
    }
}

/// The names the engine knows: every registered function, and those that take a
/// first argument (what `x.name()` can call).
#[derive(Debug, Default)]
struct Registry {
    functions: BTreeSet<String>,
    methods: BTreeSet<String>,
    /// Properties with a getter (`h.id`): `h.id()` is a mistake worth naming.
    properties: BTreeSet<String>,
}

impl Registry {
    fn of(engine: &Engine) -> Registry {
        let mut reg = Registry::default();
        let entries = engine.collect_fn_metadata(
            None,
            |f| Some((f.metadata.name.to_string(), f.metadata.num_params)),
            true,
        );
        for (name, params) in entries {
            if let Some(prop) = name.strip_prefix("get$") {
                reg.properties.insert(prop.to_string());
            }
            // Property getters/setters and indexers are not callable by name.
            if !is_identifier(&name) || name.contains('$') {
                continue;
            }
            if params >= 1 {
                reg.methods.insert(name.clone());
            }
            reg.functions.insert(name);
        }
        for k in KEYWORDS {
            reg.functions.insert((*k).to_string());
            reg.methods.insert((*k).to_string());
        }
        reg
    }
}

/// Checks the script `text` (the main script of `sources`) and the modules it
/// imports; returns the problems, the main script's first, each file's in the order
/// found (after a syntax error, nothing more of that file).
///
/// The script is compiled without optimization, so literal maps keep their keys'
/// positions; the engine's optimization level is restored afterwards.
pub fn check_text(engine: &mut Engine, text: &str, sources: &Sources) -> Vec<Problem> {
    let level = engine.optimization_level();
    engine.set_optimization_level(OptimizationLevel::None);
    let mut problems = check_unoptimized(engine, text, sources);
    engine.set_optimization_level(level);
    // The main script's problems first (modules are read before its calls are checked).
    problems.sort_by_key(|p| p.at.file != sources.main_name);
    problems
}

fn check_unoptimized(engine: &Engine, text: &str, sources: &Sources) -> Vec<Problem> {
    let mut checker = Checker {
        engine,
        registry: Registry::of(engine),
        sources,
        visited: BTreeSet::new(),
        problems: Vec::new(),
    };
    match engine.compile(text) {
        Ok(ast) => checker.check_ast(&ast, None),
        Err(e) => checker.problems.push(Problem {
            at: Located::at(sources, None, e.1, format!("syntax error: {}", e.0)),
            syntax: true,
        }),
    }
    checker.problems
}

/// Walks one file's AST (`source`: the import path of a module, `None` for the main
/// script), collecting problems.
struct Checker<'a> {
    engine: &'a Engine,
    registry: Registry,
    sources: &'a Sources,
    /// Modules already checked (by import path), so each is checked once.
    visited: BTreeSet<String>,
    problems: Vec<Problem>,
}

/// What one file defines and uses, gathered before its calls are checked.
#[derive(Debug, Default)]
struct FileNames {
    /// Functions the file defines (any access).
    functions: BTreeSet<String>,
    /// Variables, parameters and loop variables: a call `f(x)` may go through one.
    variables: BTreeSet<String>,
    /// Keys of literal maps and properties read or written: `obj.f()` may call a
    /// closure stored under one.
    keys: BTreeSet<String>,
    /// `import "path" as alias`: alias, path, position of the import.
    imports: Vec<(String, String, Position)>,
}

fn gather(ast: &AST) -> FileNames {
    let mut names = FileNames::default();
    for f in ast.iter_functions() {
        names.functions.insert(f.name.to_string());
        names
            .variables
            .extend(f.params.iter().map(|p| p.to_string()));
    }
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => {
                names.variables.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, ..))) => {
                names.variables.insert(x.0.name.to_string());
                if let Some(i) = &x.1 {
                    names.variables.insert(i.name.to_string());
                }
            }
            Some(ASTNode::Stmt(Stmt::Import(x, pos))) => {
                if let Expr::StringConstant(p, _) = &x.0
                    && !x.1.name.is_empty()
                {
                    names
                        .imports
                        .push((x.1.name.to_string(), p.to_string(), *pos));
                }
            }
            Some(ASTNode::Expr(Expr::Variable(x, ..))) => {
                names.variables.insert(x.1.to_string());
            }
            Some(ASTNode::Expr(Expr::Map(m, _))) => {
                names
                    .keys
                    .extend(m.0.iter().map(|(k, _)| k.name.to_string()));
            }
            Some(ASTNode::Expr(Expr::Property(p, _))) => {
                names.keys.insert(p.2.to_string());
            }
            _ => {}
        }
        true
    });
    names
}

/// An imported module: its alias and its public functions (`None`: not readable or
/// not parsed, so calls into it are not checked).
type Module = (String, Option<BTreeSet<String>>);

impl Checker<'_> {
    fn check_ast(&mut self, ast: &AST, source: Option<&str>) {
        let names = gather(ast);
        let modules: Vec<Module> = names
            .imports
            .iter()
            .map(|(alias, path, pos)| (alias.clone(), self.module(path, source, *pos)))
            .collect();
        let mut found = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(x, pos)) | ASTNode::Stmt(Stmt::FnCall(x, pos))) => {
                    Some((x, *pos, false))
                }
                Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => Some((x, *pos, true)),
                _ => None,
            };
            if let Some((x, pos, method)) = call {
                found.extend(self.check_call(x, pos, method, &names, &modules));
            }
            true
        });
        self.problems
            .extend(found.into_iter().map(|(pos, message)| Problem {
                at: Located::at(self.sources, source, pos, message),
                syntax: false,
            }));
    }

    /// The public functions of the module imported as `path`, checking it in turn
    /// (once). A module that does not parse is a syntax problem located in it.
    fn module(
        &mut self,
        path: &str,
        importer: Option<&str>,
        pos: Position,
    ) -> Option<BTreeSet<String>> {
        let file = self.sources.module_file(path);
        let text = crate::input::read_text(&file, InputKind::Script).ok()?;
        let ast = match self.engine.compile(&text) {
            Ok(ast) => ast,
            Err(e) => {
                if self.visited.insert(path.to_string()) {
                    let mut at = Located::at(
                        self.sources,
                        Some(path),
                        e.1,
                        format!("syntax error: {}", e.0),
                    );
                    let here = Located::at(self.sources, importer, pos, String::new());
                    at.trace
                        .push(format!("in module '{path}' imported at {}", here.place()));
                    self.problems.push(Problem { at, syntax: true });
                }
                return None;
            }
        };
        if self.visited.insert(path.to_string()) {
            self.check_ast(&ast, Some(path));
        }
        Some(
            ast.iter_functions()
                .filter(|f| f.access != FnAccess::Private)
                .map(|f| f.name.to_string())
                .collect(),
        )
    }

    /// The problems of one call: an unknown function or method, unknown option keys.
    fn check_call(
        &self,
        call: &FnCallExpr,
        pos: Position,
        method: bool,
        names: &FileNames,
        modules: &[Module],
    ) -> Vec<(Position, String)> {
        let name = call.name.as_str();
        if call.is_operator_call() || !is_identifier(name) {
            return Vec::new();
        }
        if !call.namespace.is_empty() {
            return self
                .check_qualified(call, pos, modules)
                .into_iter()
                .collect();
        }
        let mut out = Vec::new();
        // A key read as a property may hold a closure, unless a getter reads it.
        let key = names.keys.contains(name) && !self.registry.properties.contains(name);
        let known = if method {
            self.registry.methods.contains(name) || key
        } else {
            self.registry.functions.contains(name) || names.variables.contains(name)
        };
        if !known && !names.functions.contains(name) {
            let candidates = self
                .registry
                .functions
                .iter()
                .filter(|n| !method || self.registry.methods.contains(*n))
                .chain(&names.functions)
                .map(String::as_str);
            let message = if method && self.registry.properties.contains(name) {
                format!("`{name}` is a property, not a method: write `.{name}` without `()`")
            } else {
                let what = if method { "method" } else { "function" };
                unknown(what, name, candidates)
            };
            out.push((pos, message));
        }
        // The script's own function of that name takes whatever it likes.
        if !names.functions.contains(name) {
            out.extend(check_options(name, &call.args));
        }
        out
    }

    /// `alias::name(…)`: checked when `alias` is a module this file imports and read.
    fn check_qualified(
        &self,
        call: &FnCallExpr,
        pos: Position,
        modules: &[Module],
    ) -> Option<(Position, String)> {
        if call.namespace.path.len() != 1 {
            return None;
        }
        let alias = call.namespace.root();
        let (_, Some(functions)) = modules.iter().find(|(a, _)| a == alias)? else {
            return None;
        };
        let name = call.name.as_str();
        if functions.contains(name) {
            return None;
        }
        let message = unknown("function", &format!("{alias}::{name}"), std::iter::empty());
        let hint = did_you_mean(name, functions.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{alias}::{s}`?"))
            .unwrap_or_else(|| format!(" (module '{alias}' has no public function `{name}`)"));
        Some((pos, format!("{message}{hint}")))
    }
}

/// Unknown keys in the literal option maps passed to a primitive that takes one.
fn check_options(function: &str, args: &[Expr]) -> Vec<(Position, String)> {
    let Some(known) = option_keys(function) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for arg in args {
        let Expr::Map(m, _) = arg else { continue };
        for (key, _) in &m.0 {
            let key_name = key.name.as_str();
            if known.contains(&key_name) {
                continue;
            }
            let hint = did_you_mean(key_name, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; known options: {}", known.join(", ")));
            out.push((
                key.pos,
                format!("unknown option `{key_name}` for {function}{hint}"),
            ));
        }
    }
    out
}

/// `unknown function `uniq`; did you mean `unique`?`
fn unknown<'a>(what: &str, name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(s) => format!("unknown {what} `{name}`; did you mean `{s}`?"),
        None => format!("unknown {what} `{name}`"),
    }
}

/// A name a script can call (not an operator like `+` or `..`).
fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every function name the engine knows (registered, built in or a keyword), sorted.
pub fn known_functions(engine: &Engine) -> Vec<String> {
    Registry::of(engine).functions.into_iter().collect()
}

/// "1 problem", "3 problems".
pub fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".to_string()
    } else {
        format!("{n} problems")
    }
}

/// The error that stops a run for these problems, if any: the first syntax error
/// (shown with its source line, like any syntax error), else all the problems.
pub fn into_error(problems: Vec<Problem>) -> Option<ScriptError> {
    if problems.is_empty() {
        return None;
    }
    Some(match problems.iter().find(|p| p.syntax) {
        Some(p) => ScriptError::Syntax(Box::new(p.at.clone())),
        None => ScriptError::Check(problems),
    })
}

/// Checks the script file at `path` the way `barsmith run` does before starting it,
/// with an engine of its own (nothing is run, no host setting matters).
pub fn check_file(path: &Path) -> Result<Vec<Problem>, InputError> {
    let text = crate::input::read_text(path, InputKind::Script)?;
    let host = Host::new(HostConfig::default());
    host.set_script(ScriptInfo {
        path: Some(path.to_path_buf()),
        ..ScriptInfo::default()
    });
    let mut engine = crate::script::engine::build(Arc::clone(&host));
    let sources = Sources {
        main_name: path.display().to_string(),
        main_text: text.clone(),
        module_dir: host.script_dir(),
        functions: Vec::new(),
    };
    Ok(check_text(&mut engine, &text, &sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_arg(keys: &[&str]) -> Expr {
        let mut engine = Engine::new();
        engine.set_optimization_level(OptimizationLevel::None);
        let fields: Vec<String> = keys.iter().map(|k| format!("{k}: 1")).collect();
        let ast = engine
            .compile_expression(format!("#{{{}}}", fields.join(", ")))
            .unwrap();
        match &ast.statements()[0] {
            Stmt::Expr(e) => (**e).clone(),
            other => panic!("not an expression: {other:?}"),
        }
    }

    #[test]
    fn option_keys_come_from_the_primitives_list() {
        let args = [
            Expr::Unit(Position::NONE),
            map_arg(&["outdir", "form", "zzz"]),
        ];
        let found: Vec<String> = check_options("spawn_batch", &args)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            found[0],
            "unknown option `form` for spawn_batch; did you mean `from`?"
        );
        assert!(
            found[1].starts_with(
                "unknown option `zzz` for spawn_batch; known options: outdir, from, to"
            )
        );
        assert!(check_options("chunk", &args).is_empty(), "no option map");
    }

    #[test]
    fn operators_are_not_names() {
        assert!(is_identifier("uniq") && is_identifier("_x"));
        assert!(!is_identifier("+") && !is_identifier("..") && !is_identifier(""));
        assert_eq!(count(1), "1 problem");
        assert_eq!(count(3), "3 problems");
    }
}
