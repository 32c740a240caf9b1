//! Running a script file the way `barsmith run` does.

use std::path::Path;
use std::sync::Arc;

use rhai::EvalAltResult;

use crate::script::error::{ScriptError, Sources};
use crate::script::host::{Ending, Host, ScriptInfo};
use crate::script::{check, engine};

/// Runs the script at `path` with `args` (the arguments after the script path) and
/// returns its exit status: the code given to `exit(code)`, else 0.
///
/// The file is compiled first (so `import` resolves from the script's folder and
/// errors name the file), then run. Batches still running when the script ends are
/// shut down and the run records written, whatever the outcome.
pub fn run_file(path: &Path, args: Vec<String>, host: Arc<Host>) -> Result<i32, ScriptError> {
    let text = crate::input::read_text(path, crate::input::InputKind::Script)?;
    host.set_script(ScriptInfo {
        path: Some(path.to_path_buf()),
        args,
        doc: String::new(),
        flag_comments: crate::script::primitives::flags::flag_comments(&text),
    });
    let mut engine = engine::build(Arc::clone(&host));
    let mut sources = Sources {
        main_name: path.display().to_string(),
        main_text: text.clone(),
        module_dir: host.script_dir(),
        functions: check::known_functions(&engine),
    };
    let mut ast = engine
        .compile(&text)
        .map_err(|e| ScriptError::from_parse(&e, &sources))?;
    ast.set_source(sources.main_name.as_str());
    sources
        .functions
        .extend(ast.iter_functions().map(|f| f.name.to_string()));
    // Unknown functions and options stop the script before anything starts.
    if let Some(e) = check::into_error(check::check_text(&mut engine, &text, &sources)) {
        return Err(e);
    }
    let mut info = host.script();
    info.doc = ast
        .doc()
        .lines()
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    host.set_script(info);

    let result = engine.run_ast(&ast);
    let outcome = finish(result, &host, &sources);
    host.shut_down(outcome.as_ref().map_or_else(ScriptError::exit_code, |c| *c));
    outcome
}

/// Turns the evaluation result and the recorded ending into an exit status or error.
fn finish(
    result: Result<(), Box<EvalAltResult>>,
    host: &Host,
    sources: &Sources,
) -> Result<i32, ScriptError> {
    let ending = host.take_ending();
    match result {
        Err(e) if !matches!(*e, EvalAltResult::Exit(..)) => {
            Err(ScriptError::from_eval(&e, sources))
        }
        _ if host.is_cancelled() => Err(ScriptError::Cancelled),
        _ => match ending {
            None => Ok(0),
            Some(Ending::Exit(code)) => Ok(code),
            Some(Ending::Usage { message, usage }) => Err(ScriptError::Usage { message, usage }),
            Some(Ending::Setup(message)) => Err(ScriptError::Setup(message)),
        },
    }
}
