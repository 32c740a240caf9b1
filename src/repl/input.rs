//! Reading input: when a statement is unfinished (multi-line input), and what Tab
//! completes. The rustyline [`ReplHelper`] and the piped-stdin reader share
//! [`InputCheck`], so both accept the same multi-line input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rhai::{Engine, LexError, ParseErrorType};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::repl::commands::COMMANDS;

/// Decides whether input is complete by asking rhai's parser.
///
/// Input is unfinished when the parse error sits at the very end of the text: the
/// parser ran out of input inside a block, a call, an array or map literal, or a
/// back-tick string. Appending blank lines moves such an error (it is "at the end")
/// and leaves a genuine mistake where it is, so the test needs no list of error
/// kinds that might mean "more to come".
pub struct InputCheck {
    engine: Engine,
}

impl Default for InputCheck {
    fn default() -> InputCheck {
        InputCheck::new()
    }
}

impl InputCheck {
    /// A checker with its own parser-only engine (no strict variables: the checker
    /// does not know the session's variables; evaluation reports unknown names).
    pub fn new() -> InputCheck {
        let mut engine = Engine::new_raw();
        engine.set_max_expr_depths(0, 0);
        InputCheck { engine }
    }

    /// True when `text` is an unfinished statement that the next line may complete.
    /// `:` commands and blank input are always complete.
    pub fn is_incomplete(&self, text: &str) -> bool {
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with(':') {
            return false;
        }
        let Err(err) = self.engine.compile(text) else {
            return false;
        };
        match *err.0 {
            ParseErrorType::UnexpectedEOF => return true,
            // A back-tick string may span lines; a quoted one may not.
            ParseErrorType::BadInput(LexError::UnterminatedString) => {
                return char_at(text, err.1) == Some('`');
            }
            _ => {}
        }
        match self.engine.compile(format!("{text}\n\n")) {
            Ok(_) => false,
            Err(later) => later.1 != err.1 && at_or_after_end(text, err.1),
        }
    }
}

/// The character at `pos` (1-based line and column) of `text`.
fn char_at(text: &str, pos: rhai::Position) -> Option<char> {
    let line = text.split('\n').nth(pos.line()?.checked_sub(1)?)?;
    line.chars().nth(pos.position()?.checked_sub(1)?)
}

/// True when `pos` is on the last line of `text` or later (rhai reports the end of
/// input there).
fn at_or_after_end(text: &str, pos: rhai::Position) -> bool {
    let lines = text.split('\n').count();
    pos.line().is_none_or(|l| l >= lines)
}

/// What the session holds, for completion: refreshed after every input.
#[derive(Debug, Clone, Default)]
pub struct InScope {
    /// Variables in scope and script functions.
    pub names: Vec<String>,
    /// The script type of each variable (`Bars`, `array`, `string`, ...).
    pub types: HashMap<String, String>,
}

/// The rustyline helper: multi-line validation and Tab completion.
pub struct ReplHelper {
    check: InputCheck,
    in_scope: Arc<Mutex<InScope>>,
    primitives: Vec<String>,
    /// `(receiver type, name)` of every method and property.
    methods: Vec<(String, String)>,
    files: FilenameCompleter,
}

impl ReplHelper {
    /// A helper completing `primitives` plus whatever `in_scope` holds when Tab is
    /// pressed, and after a `.` the `methods` (`(receiver type, name)` pairs) that
    /// apply to the value before it.
    pub fn new(
        primitives: Vec<String>,
        methods: Vec<(String, String)>,
        in_scope: Arc<Mutex<InScope>>,
    ) -> ReplHelper {
        ReplHelper {
            check: InputCheck::new(),
            in_scope,
            primitives,
            methods,
            files: FilenameCompleter::new(),
        }
    }

    /// Completions of the code (not a `:` command) before the cursor: after `name.`
    /// the methods and properties of that variable's type (of every type when it is
    /// not a known variable), else variables, script functions and primitives.
    pub fn complete_code(&self, before: &str) -> (usize, Vec<String>) {
        let (start, word) = word_before(before);
        let scope = self
            .in_scope
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(receiver) = before[..start].strip_suffix('.') {
            let (_, var) = word_before(receiver);
            let typ = scope.types.get(var).map(String::as_str);
            let names = self
                .methods
                .iter()
                .filter(|(t, _)| typ.is_none_or(|typ| t == typ || t == "any"))
                .map(|(_, n)| n.as_str());
            return (start, found(names, word));
        }
        if word.is_empty() {
            return (start, Vec::new());
        }
        let all = scope
            .names
            .iter()
            .map(String::as_str)
            .chain(self.primitives.iter().map(String::as_str));
        (start, found(all, word))
    }
}

impl Helper for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if self.check.is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // `:load FILE` completes paths; `:doc NAME` / `:fns NAME` primitives.
        if let Some(rest) = before.trim_start().strip_prefix(':') {
            match rest.split_once(char::is_whitespace) {
                None => {
                    let start = pos - rest.len();
                    return Ok((start, candidates(COMMANDS.iter().map(|c| c.name), rest)));
                }
                Some(("load", _)) => return self.files.complete(line, pos, ctx),
                Some(("doc" | "fns", _)) => {
                    let (start, word) = word_before(before);
                    let names = self.primitives.iter().map(String::as_str);
                    return Ok((start, candidates(names, word)));
                }
                Some(_) => return Ok((pos, Vec::new())),
            }
        }
        let (start, words) = self.complete_code(before);
        let pairs = words
            .into_iter()
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        Ok((start, pairs))
    }
}

/// The identifier ending at the end of `before`, and where it starts.
fn word_before(before: &str) -> (usize, &str) {
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(before.len(), |(i, _)| i);
    (start, &before[start..])
}

/// Sorted, de-duplicated completions of `word` among `names`.
fn found<'a>(names: impl Iterator<Item = &'a str>, word: &str) -> Vec<String> {
    let mut found: Vec<String> = names
        .filter(|n| n.starts_with(word))
        .map(str::to_string)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// [`found`] as rustyline candidates.
fn candidates<'a>(names: impl Iterator<Item = &'a str>, word: &str) -> Vec<Pair> {
    found(names, word)
        .into_iter()
        .map(|n| Pair {
            display: n.clone(),
            replacement: n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_blocks_strings_and_calls_ask_for_more() {
        let c = InputCheck::new();
        for text in [
            "fn f(x) {",
            "fn f(x) {\n  let y = x;",
            "let a = [1, 2,",
            "let m = #{a: 1,",
            "print(1,",
            "let s = `multi\nline",
            "if x > 1 {\n print(x);\n} else {",
            "let x = 1 +",
        ] {
            assert!(c.is_incomplete(text), "{text:?} should be incomplete");
        }
    }

    #[test]
    fn finished_or_wrong_input_is_evaluated() {
        let c = InputCheck::new();
        for text in [
            "1 + 2",
            "let x = 3;",
            "fn f(x) { x }",
            ":load missing file",
            "",
            "let x = ;",
            "let s = \"unterminated",
            "}",
            "1 +* 2",
        ] {
            assert!(!c.is_incomplete(text), "{text:?} should be complete");
        }
    }

    #[test]
    fn completes_the_word_under_the_cursor() {
        assert_eq!(word_before("print(fail"), (6, "fail"));
        assert_eq!(word_before("x"), (0, "x"));
        assert_eq!(word_before("a + "), (4, ""));
        let got: Vec<String> = candidates(["failures", "fetch", "failures"].into_iter(), "fa")
            .into_iter()
            .map(|p| p.replacement)
            .collect();
        assert_eq!(got, ["failures"]);
    }

    #[test]
    fn after_a_dot_completes_the_methods_of_the_variables_type() {
        let session = crate::repl::session::tests_support::session();
        let scope = InScope {
            names: vec!["bars".into(), "word".into()],
            types: [("bars", "Bars"), ("word", "string")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        };
        let helper = ReplHelper::new(
            vec!["load_bars".into()],
            session.methods(),
            Arc::new(Mutex::new(scope)),
        );
        let (start, got) = helper.complete_code("let d = bars.res");
        assert_eq!((start, got), (13, vec!["resample".to_string()]));
        let (_, got) = helper.complete_code("bars.t");
        for m in ["table", "ticker", "to_csv", "to_parquet"] {
            assert!(got.contains(&m.to_string()), "{m}: {got:?}");
        }
        assert!(!got.contains(&"trim".to_string()), "{got:?}");
        let (_, got) = helper.complete_code("word.to_up");
        assert_eq!(got, ["to_upper"]);
        // Unknown receiver: every method with that prefix.
        let (_, got) = helper.complete_code("f(x).resa");
        assert_eq!(got, ["resample"]);
        let (_, got) = helper.complete_code("bars.");
        assert!(
            got.contains(&"filter".to_string()) && got.len() > 10,
            "{got:?}"
        );
        assert_eq!(helper.complete_code("load_b").1, ["load_bars"]);
    }
}
