//! The `:` commands. They start with a colon so they never clash with a variable or
//! function name; everything else is Rhai.

/// One `:` command, as `:help` lists it.
pub struct CommandInfo {
    /// Name without the colon.
    pub name: &'static str,
    /// Argument synopsis.
    pub args: &'static str,
    /// One-line description.
    pub about: &'static str,
}

/// Every command, in `:help` order.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "help",
        args: "",
        about: "this help",
    },
    CommandInfo {
        name: "fns",
        args: "[FILTER]",
        about: "primitives with signatures and docs (a theme, or part of a name)",
    },
    CommandInfo {
        name: "doc",
        args: "NAME",
        about: "the full doc of one primitive or script function",
    },
    CommandInfo {
        name: "load",
        args: "FILE",
        about: "run a script file here; its functions and variables stay",
    },
    CommandInfo {
        name: "vars",
        args: "",
        about: "variables in scope and script functions defined so far",
    },
    CommandInfo {
        name: "quit",
        args: "",
        about: "leave (also Ctrl-D)",
    },
];

/// A parsed `:` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `:help`
    Help,
    /// `:fns [FILTER]`
    Fns(Option<String>),
    /// `:doc NAME`
    Doc(String),
    /// `:load FILE`
    Load(String),
    /// `:vars`
    Vars,
    /// `:quit`
    Quit,
}

/// Parses `:name args`; the error is the one-line message to show.
pub fn parse(input: &str) -> Result<Command, String> {
    let body = input.trim().trim_start_matches(':');
    let (name, arg) = match body.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (body, ""),
    };
    let arg = (!arg.is_empty()).then(|| arg.to_string());
    let needs = |what: &str| format!(":{name} needs {what}, e.g. :{name} {}", example(name));
    match name {
        "help" | "h" | "?" => Ok(Command::Help),
        "fns" => Ok(Command::Fns(arg)),
        "doc" => arg.map(Command::Doc).ok_or_else(|| needs("a name")),
        "load" => arg.map(Command::Load).ok_or_else(|| needs("a file")),
        "vars" => Ok(Command::Vars),
        "quit" | "q" | "exit" => Ok(Command::Quit),
        "" => Err("empty command; type :help for the list".to_string()),
        other => {
            let names = COMMANDS.iter().map(|c| c.name);
            let hint = names
                .clone()
                .find(|c| other.get(..2).is_some_and(|p| c.starts_with(p)))
                .map(|c| format!(" (did you mean :{c}?)"))
                .unwrap_or_default();
            Err(format!(
                "unknown command :{other}{hint}; commands: {}",
                names.map(|n| format!(":{n}")).collect::<Vec<_>>().join(" ")
            ))
        }
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "doc" => "failures",
        "load" => "scripts/lib.rhai",
        _ => "",
    }
}

/// The `:help` text.
pub fn help() -> String {
    let mut out = String::from(
        "Type Rhai statements; unfinished ones continue on the next line. Variables and\n\
         functions persist between inputs. Tab completes; Ctrl-C cancels the line or the\n\
         running command (fetches and batches included); Ctrl-D quits.\n\nCommands:\n",
    );
    for c in COMMANDS {
        let synopsis = format!(":{} {}", c.name, c.args);
        out.push_str(&format!("  {synopsis:<16} {}\n", c.about));
    }
    out.push_str(
        "\nDiagnosing a run:\n\
         \x20 failures(run_dir)            failed tickers with class, kind, status, message, log\n\
         \x20 batch_log(run_dir, 3, #{tail: 40, grep: \"AAPL\"})\n\
         \x20 request(\"/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02\")\n\
         \x20 fetch_minute_bars(\"AAPL\", \"2024-01-02\", \"2024-01-05\")\n\
         \x20 ingest([\"AAPL\"], #{outdir: \"data/minute\", from: \"2024-01-01\", to: \"2024-12-31\"})\n\
         \x20 coverage(\"data/minute\", \"AAPL\")\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_rejects_unknown_ones_in_one_line() {
        assert_eq!(parse(":help"), Ok(Command::Help));
        assert_eq!(parse(":fns fetch"), Ok(Command::Fns(Some("fetch".into()))));
        assert_eq!(parse(":fns"), Ok(Command::Fns(None)));
        assert_eq!(
            parse(":load  a b.rhai "),
            Ok(Command::Load("a b.rhai".into()))
        );
        let e = parse(":lod x").unwrap_err();
        assert!(e.starts_with("unknown command :lod"), "{e}");
        assert!(!e.contains('\n'));
        assert!(parse(":doc").unwrap_err().contains(":doc needs a name"));
    }
}
