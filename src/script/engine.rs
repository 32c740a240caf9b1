//! The one place that builds the script engine, for `barsmith run`, the REPL and tests.

use std::sync::Arc;

use rhai::module_resolvers::FileModuleResolver;
use rhai::{
    AST, Dynamic, Engine, EvalAltResult, Module, ModuleResolver, NativeCallContext, Position,
    Shared,
};

use crate::input::{InputError, InputKind, check_size};

use crate::script::host::Host;
use crate::script::primitives::THEMES;
use crate::script::value::{Fallible, error};

/// Deepest script function call nesting.
pub const MAX_CALL_LEVELS: usize = 128;
/// Longest string a script may build (bytes).
pub const MAX_STRING_SIZE: usize = 64 << 20;
/// Most elements in one array (a universe is a few thousand tickers).
pub const MAX_ARRAY_SIZE: usize = 10_000_000;
/// Most entries in one map.
pub const MAX_MAP_SIZE: usize = 1_000_000;
/// Deepest expression nesting (global, and half of it inside functions).
pub const MAX_EXPR_DEPTH: usize = 128;

/// Most modules a script may import.
pub const MAX_MODULES: usize = 256;

/// Builds the engine for `host`: limits, output routing, cancellation, every
/// primitive and custom type, and `import` resolved from the script's folder.
///
/// Variables are strict (an undefined variable is a compile error, caught before a
/// long run starts) and reading a missing map property is an error (a typo in
/// `r.stauts` does not silently read `()`); test for optional keys with `"key" in map`.
pub fn build(host: Arc<Host>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_modules(MAX_MODULES)
        // rhai's debug-build default (32) rejects ordinary one-liners with closures.
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_EXPR_DEPTH / 2)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);

    crate::script::types::register(&mut engine);
    for theme in THEMES {
        engine.register_global_module((theme.module)().into());
    }

    let out = host.clone();
    engine.on_print(move |s| out.print(s));
    engine.on_debug(|s, source, pos| {
        tracing::debug!(target: "barsmith::script", source = source.unwrap_or(""), %pos, "{s}");
    });
    let cancel = host.cancel_flag().clone();
    engine.on_progress(move |_| cancel.is_cancelled().then(|| Dynamic::from("cancelled")));

    let resolver = match host.script_dir() {
        Some(dir) => FileModuleResolver::new_with_path(dir),
        None => FileModuleResolver::new(),
    };
    engine.set_module_resolver(BoundedResolver(resolver));
    engine.set_default_tag(Dynamic::from(host));
    engine
}

/// Rhai's file resolver, refusing modules that are not regular files within the
/// script size limit (Rhai reads a module whole: `import "/dev/zero"` would not stop).
/// Modules resolve through `resolve` (the default `resolve_raw` calls it), so relative
/// imports keep resolving from the importing script's folder.
struct BoundedResolver(FileModuleResolver);

impl BoundedResolver {
    fn check(
        &self,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<(), Box<EvalAltResult>> {
        let dir = source.and_then(|p| std::path::Path::new(p).parent());
        let file = self.0.get_file_path(path, dir);
        match check_size(&file, InputKind::Script) {
            Err(e @ InputError::TooLarge { .. }) => Err(Box::new(EvalAltResult::ErrorRuntime(
                format!("import: {e}").into(),
                pos,
            ))),
            // Missing or unreadable: Rhai's own error says so.
            _ => Ok(()),
        }
    }
}

impl ModuleResolver for BoundedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        self.check(source, path, pos)?;
        self.0.resolve(engine, source, path, pos)
    }

    fn resolve_ast(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Option<Result<AST, Box<EvalAltResult>>> {
        if let Err(e) = self.check(source, path, pos) {
            return Some(Err(e));
        }
        self.0.resolve_ast(engine, source, path, pos)
    }
}

/// The host of the engine running a primitive.
pub(crate) fn host(ctx: &NativeCallContext) -> Fallible<Arc<Host>> {
    ctx.tag()
        .and_then(|t| t.read_lock::<Arc<Host>>().map(|h| Arc::clone(&h)))
        .ok_or_else(|| {
            error(format!(
                "{}: this engine has no barsmith host",
                ctx.fn_name()
            ))
        })
}
