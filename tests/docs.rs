//! The documentation tells the truth: the checked-in script reference matches the
//! primitives' doc comments, the README's reader snippets run against data barsmith
//! wrote, every subcommand's `--help` has an example, and completions cover every
//! subcommand.
//!
//! The README snippets run with `common::python_with_readers` (`BARSMITH_PYTHON`, or a
//! venv with the pinned readers made on first use), like `tests/readers.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use barsmith::calendar::DateRange;
use common::{Fixture, run, stderr};

const REGENERATE: &str = "cargo run -- fns --markdown > scripts/PRIMITIVES.md";

fn barsmith() -> Command {
    Command::new(env!("CARGO_BIN_EXE_barsmith"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn stdout_of(args: &[&str]) -> String {
    let out = barsmith().args(args).output().expect("barsmith runs");
    assert!(
        out.status.success(),
        "barsmith {}: {}",
        args.join(" "),
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommands users can type (clap's implicit `help` aside).
fn subcommands() -> Vec<String> {
    barsmith::cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "help")
        .collect()
}

#[test]
fn primitives_reference_is_current() {
    let generated = stdout_of(&["fns", "--markdown"]);
    let path = repo("scripts/PRIMITIVES.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if generated == checked_in {
        return;
    }
    let (line, ours, theirs) = generated
        .lines()
        .zip(checked_in.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i + 1, a.to_string(), b.to_string()))
        .unwrap_or_else(|| {
            let n = generated.lines().count().min(checked_in.lines().count());
            (n + 1, "(length differs)".into(), String::new())
        });
    panic!(
        "scripts/PRIMITIVES.md is out of date with the primitives' doc comments \
         (first difference at line {line}:\n  generated:  {ours}\n  checked in: {theirs}\n).\n\
         Regenerate it from the repository root with:\n\n    {REGENERATE}\n"
    );
}

#[test]
fn every_subcommand_help_has_an_example_and_every_flag_a_description() {
    assert!(stdout_of(&["--help"]).contains("Example"));
    let cmd = barsmith::cli::command();
    let names = subcommands();
    assert!(names.len() >= 6, "{names:?}");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        assert!(sub.get_about().is_some(), "`barsmith {name}` has no about");
        let help = stdout_of(&[name, "--help"]);
        assert!(
            help.contains("Example"),
            "`barsmith {name} --help` has no Example section:\n{help}"
        );
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            assert!(
                arg.get_help().is_some() || arg.get_long_help().is_some(),
                "`barsmith {name}` argument `{id}` has no help text"
            );
        }
    }
}

#[test]
fn completions_for_each_shell_mention_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(&["completions", shell]);
        assert!(text.len() > 200, "{shell}: {text}");
        for name in &names {
            assert!(
                text.contains(name.as_str()),
                "{shell} completions miss `{name}`"
            );
        }
    }
}

/// The bodies of the README's fenced code blocks tagged `lang`.
fn fenced(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_start().strip_prefix("```") == Some(lang) => {
                current = Some(String::new());
            }
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Runs one snippet with `python` in `dir` and returns its stdout.
fn run_snippet(python: &Path, dir: &Path, n: usize, kind: &str, code: &str) -> String {
    let file = dir.join(format!("snippet-{n}.{kind}"));
    std::fs::write(&file, code).unwrap();
    let mut cmd = Command::new(python);
    cmd.current_dir(dir);
    if kind == "sql" {
        cmd.args([
            "-c",
            "import sys, duckdb; print(duckdb.connect().sql(open(sys.argv[1]).read()).fetchall())",
        ])
        .arg(&file);
    } else {
        cmd.arg(&file);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run BARSMITH_PYTHON={}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "README {kind} snippet failed:\n{code}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(
        !stdout.trim().is_empty(),
        "README snippet printed nothing:\n{code}"
    );
    stdout
}

#[test]
fn readme_reader_snippets_run_against_an_ingested_dataset() {
    let python = common::python_with_readers();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let sql = fenced(&readme, "sql");
    let py = fenced(&readme, "python");
    assert!(
        !sql.is_empty() && py.len() >= 2,
        "README lost its reader snippets"
    );

    // The snippets read `data/minute`, which is where the fixture's data root is.
    let fx = Fixture::with_faults(&[]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], "2024-12-02", "2025-01-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.outdir(), fx.dir.path().join("data/minute"));
    let aapl_2025 = fx
        .store()
        .read_bars(
            "AAPL",
            DateRange::parse("2025-01-01", "2025-01-31").unwrap(),
        )
        .unwrap()
        .len();
    assert!(aapl_2025 > 0);

    // Every snippet runs; each reader shows the AAPL 2025 bar count in some snippet.
    let mut seen = std::collections::BTreeMap::<&str, String>::new();
    let snippets = sql
        .iter()
        .map(|c| ("sql", c))
        .chain(py.iter().map(|c| ("py", c)));
    for (n, (kind, code)) in snippets.enumerate() {
        let reader = if kind == "sql" {
            "duckdb"
        } else if code.contains("import pandas") {
            "pandas"
        } else if code.contains("import polars") {
            "polars"
        } else if code.contains("import pyarrow") {
            "pyarrow"
        } else {
            "other"
        };
        let output = run_snippet(&python, fx.dir.path(), n, kind, code);
        seen.entry(reader).or_default().push_str(&output);
    }
    for reader in ["duckdb", "pandas", "polars", "pyarrow"] {
        let output = seen.get(reader).map_or("", String::as_str);
        assert!(
            output.contains(&aapl_2025.to_string()),
            "no {reader} snippet showed the {aapl_2025} AAPL bars of 2025:\n{output}"
        );
    }
}
