//! `barsmith check`: syntax errors, unknown functions, methods and option keys are
//! found before a script runs, one compiler-style line each with the closest known
//! name; `barsmith run` refuses such a script before any batch; runtime type errors
//! read as sentences.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Fixture, run, stderr, stdout};

/// A temp folder holding the given script files.
fn scripts(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn barsmith() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_barsmith"));
    cmd.env_remove("POLYGON_API_KEY")
        .env_remove("MASSIVE_API_KEY")
        .env("BARSMITH_LOG", "warn");
    cmd
}

fn check(paths: &[PathBuf]) -> Output {
    run({
        let mut cmd = barsmith();
        cmd.arg("check").args(paths);
        cmd
    })
}

fn path_text(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn an_unknown_function_is_named_with_the_closest_known_one() {
    let dir = scripts(&[(
        "u.rhai",
        "let tickers = [\"A\", \"B\"];\nlet n = 1;\nlet u = uniq(tickers);\n",
    )]);
    let out = check(&[dir.path().join("u.rhai")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    assert_eq!(
        text,
        format!(
            "{}:3:9: error: unknown function `uniq`; did you mean `unique`?\n1 script checked: 1 problem\n",
            path_text(dir.path(), "u.rhai")
        )
    );
}

#[test]
fn an_unknown_method_and_a_property_called_as_a_method_are_reported() {
    let dir = scripts(&[(
        "m.rhai",
        "let t = [\"A\"];\nlet parts = t.chunks(2);\nlet s = now().unix();\n",
    )]);
    let out = check(&[dir.path().join("m.rhai")]);
    let text = stdout(&out);
    let file = path_text(dir.path(), "m.rhai");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "{file}:2:15: error: unknown method `chunks`; did you mean `chunk`?"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:3:15: error: `unix` is a property, not a method: write `.unix` without `()`"
        )),
        "{text}"
    );
    assert!(text.ends_with("1 script checked: 2 problems\n"), "{text}");
}

#[test]
fn a_misspelled_key_in_a_literal_option_map_is_found_at_the_key() {
    let dir = scripts(&[(
        "o.rhai",
        "let o = \"data\";\nlet h = spawn_batch([\"A\"], #{outdir: o, form: \"2024-01-01\", to: \"2024-01-31\"});\nlet b = fetch_minute_bars(\"A\", \"2024-01-01\", \"2024-01-02\", #{timeout: 3, retires: 2});\n",
    )]);
    let out = check(&[dir.path().join("o.rhai")]);
    let text = stdout(&out);
    let file = path_text(dir.path(), "o.rhai");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "{file}:2:41: error: unknown option `form` for spawn_batch; did you mean `from`?"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:3:74: error: unknown option `retires` for fetch_minute_bars; did you mean `retries`?"
        )),
        "{text}"
    );
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let dir = scripts(&[("s.rhai", "let a = 1;\nlet b = a +;\n")]);
    let out = check(&[dir.path().join("s.rhai")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout(&out),
        format!(
            "{}:2:12: error: syntax error: Unexpected ';'\n1 script checked: 1 problem\n",
            path_text(dir.path(), "s.rhai")
        )
    );
}

#[test]
fn a_clean_script_passes_with_its_own_imported_and_builtin_functions() {
    let dir = scripts(&[
        (
            "main.rhai",
            "import \"lib/plan\" as plan;\n\
             fn double(x) { x * 2 }\n\
             let t = [\"A\", \"B\", \"A\"];\n\
             let u = unique(t).map(|x| x.to_lower()).filter(|x| x.len() > 0);\n\
             let n = double(u.len()) + plan::size(u);\n\
             let obj = #{ act: |x| x + 1 };\n\
             let k = obj.act(n) + t.double();\n\
             let f = Fn(\"double\");\n\
             let g = |x| x;\n\
             print(f.call(k) + g(1) + type_of(k).len());\n\
             let h = spawn_batch(t, #{outdir: \"d\", from: \"2024-01-01\", to: \"2024-01-02\", retries: 2});\n",
        ),
        ("lib/plan.rhai", "fn size(items) { items.len() }\n"),
    ]);
    let out = check(&[dir.path().join("main.rhai")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "1 script checked: no problems\n");
}

#[test]
fn calls_into_an_imported_module_are_checked_and_so_is_the_module() {
    let dir = scripts(&[
        (
            "main.rhai",
            "import \"lib\" as lib;\nlib::plan(1);\nlib::plam(2);\n",
        ),
        (
            "lib.rhai",
            "fn plan(x) { x }\nfn broken() { chnuk([1], 1) }\n",
        ),
    ]);
    let out = check(&[dir.path().join("main.rhai")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "{}:3:6: error: unknown function `lib::plam`; did you mean `lib::plan`?",
            path_text(dir.path(), "main.rhai")
        )),
        "{text}"
    );
    let in_lib = format!(
        "{}:2:15: error: unknown function `chnuk`; did you mean `chunk`?",
        path_text(dir.path(), "lib.rhai")
    );
    assert!(text.contains(&in_lib), "{text}");
    assert!(
        text.starts_with(&path_text(dir.path(), "main.rhai")),
        "the main script's problems first: {text}"
    );
}

#[test]
fn every_shipped_script_passes_the_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for folder in ["scripts", "examples"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "rhai") {
                paths.push(p);
            }
        }
    }
    assert!(paths.len() >= 7, "{paths:?}");
    let out = check(&paths);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("no problems\n"), "{}", stdout(&out));
}

#[test]
fn help_documents_the_exit_statuses() {
    for sub in ["check", "run"] {
        let out = run({
            let mut cmd = barsmith();
            cmd.args([sub, "--help"]);
            cmd
        });
        let text = stdout(&out);
        assert!(text.contains("Exit status:"), "{sub}: {text}");
        assert!(text.contains("barsmith check"), "{sub}: {text}");
    }
}

#[test]
fn run_refuses_a_script_with_an_unknown_function_before_any_batch() {
    let fx = Fixture::with_faults(&[]);
    let script = fx.dir.path().join("typo.rhai");
    std::fs::write(
        &script,
        "let h = spawn_batch([\"AAA\"], #{outdir: \"data\", from: \"2024-03-04\", to: \"2024-03-08\"});\n\
         let r = wait(h);\n\
         let failed = uniq(r.failed);\n",
    )
    .unwrap();
    let mut cmd = fx.barsmith();
    cmd.arg("run")
        .args(["--progress", "none", "--base-url", &fx.sandbox.base_url()])
        .arg("--run-dir")
        .arg(fx.run_dir("r"))
        .arg(&script);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3:14: error: unknown function `uniq`; did you mean `unique`?\n1 problem; the script was not started",
            script.display()
        )),
        "{err}"
    );
    assert_eq!(fx.sandbox.stats().requests, 0, "no request was made");
    assert!(!fx.run_dir("r").join("joblog.jsonl").exists());
    assert!(!fx.dir.path().join("data").exists(), "nothing was written");
}

#[test]
fn a_type_error_at_run_time_reads_as_a_sentence_with_its_position() {
    let dir = scripts(&[(
        "t.rhai",
        "let from = \"2023-11-01\";\nlet before = from - 1;\n",
    )]);
    let out = run({
        let mut cmd = barsmith();
        cmd.current_dir(dir.path()).args(["run", "t.rhai"]);
        cmd
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("t.rhai:2:19: cannot subtract an integer from a string (string - integer)"),
        "{err}"
    );
    assert!(!err.contains("Function not found"), "{err}");
}

#[test]
fn a_function_unknown_only_at_run_time_gets_the_closest_name() {
    let dir = scripts(&[(
        "f.rhai",
        "let name = \"un\" + \"iq\";\nlet f = Fn(name);\nlet u = f.call([\"A\"]);\n",
    )]);
    let out = run({
        let mut cmd = barsmith();
        cmd.current_dir(dir.path()).args(["run", "f.rhai"]);
        cmd
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown function `uniq` (array); did you mean `unique`?"),
        "{err}"
    );
}
