//! The script host end to end, without real workers: flags, universes, arrays, caret
//! errors, imports, cancellation, strict option maps, secrets and the reference.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barsmith::batch::{CancelFlag, ProgressMode, WorkerCommand};
use barsmith::calendar::DateRange;
use barsmith::sandbox::{FaultPlan, SANDBOX_API_KEY, Sandbox, SandboxConfig, synth};
use barsmith::script::{Host, HostConfig, Output, ScriptError, run_file};
use barsmith::secret::ApiKey;

/// A script folder with files, run with a private cancel flag and captured output.
struct Fixture {
    dir: tempfile::TempDir,
    cancel: CancelFlag,
    out: Arc<Mutex<String>>,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Fixture {
            dir,
            cancel: CancelFlag::new(),
            out: Arc::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> HostConfig {
        HostConfig {
            runs_root: self.path("runs"),
            progress: ProgressMode::Quiet,
            cancel: self.cancel.clone(),
            ..HostConfig::default()
        }
    }

    fn run_with(
        &self,
        config: HostConfig,
        script: &str,
        args: &[&str],
    ) -> Result<i32, ScriptError> {
        let host = Host::with_output(config, Output::Capture(self.out.clone()));
        run_file(
            &self.path(script),
            args.iter().map(|s| s.to_string()).collect(),
            host,
        )
    }

    fn run(&self, script: &str, args: &[&str]) -> Result<i32, ScriptError> {
        self.run_with(self.config(), script, args)
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

fn runtime_error(r: Result<i32, ScriptError>) -> String {
    match r {
        Err(e @ ScriptError::Runtime(_)) => e.render(),
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

const FLAGS_SCRIPT: &str = r#"//! Backfills minute bars in batches.
let cfg = args(#{
    batch_size: 25,
    resume: true,
    outdir: (),
    rate: 0.5,
    tickers: [],
    help: #{ batch_size: "tickers per batch" },
});
print(`${cfg.batch_size}|${cfg.resume}|${cfg.outdir}|${cfg.rate}|${cfg.tickers}`);
print(type_of(cfg.batch_size));
"#;

#[test]
fn script_flags_are_kebab_case_and_typed_by_their_defaults() {
    let f = Fixture::new(&[("w.rhai", FLAGS_SCRIPT)]);
    let r = f.run(
        "w.rhai",
        &[
            "--batch-size",
            "10",
            "--no-resume",
            "--outdir=data",
            "--tickers",
            "AAPL,MSFT",
        ],
    );
    assert_eq!(r.unwrap(), 0);
    assert_eq!(f.output(), "10|false|data|0.5|[\"AAPL\", \"MSFT\"]\ni64\n");
}

#[test]
fn help_after_the_script_prints_its_usage_and_exits_zero() {
    let f = Fixture::new(&[("w.rhai", FLAGS_SCRIPT)]);
    assert_eq!(f.run("w.rhai", &["--help"]).unwrap(), 0);
    let out = f.output();
    assert!(
        out.starts_with("Backfills minute bars in batches.\n\nUsage: barsmith run "),
        "{out}"
    );
    assert!(
        out.contains("--batch-size <INT>") && out.contains("tickers per batch [default: 25]"),
        "{out}"
    );
    assert!(
        out.contains("--[no-]resume")
            && out.contains("--outdir <TEXT>")
            && out.contains("(required)"),
        "{out}"
    );
    assert!(
        !out.contains("10|"),
        "the script went on after --help: {out}"
    );
}

#[test]
fn unknown_flag_is_a_usage_error_naming_the_likely_flag() {
    let f = Fixture::new(&[("w.rhai", FLAGS_SCRIPT)]);
    let err = f
        .run("w.rhai", &["--outdir", "d", "--bach-size", "3"])
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.render();
    assert!(
        text.starts_with("error: unknown flag --bach-size (did you mean --batch-size?)"),
        "{text}"
    );
    assert!(
        text.contains("Usage: barsmith run") && text.contains("--batch-size <INT>"),
        "{text}"
    );
}

#[test]
fn missing_required_flag_and_bad_value_are_usage_errors() {
    let f = Fixture::new(&[("w.rhai", FLAGS_SCRIPT)]);
    let text = f.run("w.rhai", &[]).unwrap_err().render();
    assert!(
        text.starts_with("error: missing required flag --outdir") && text.contains("Usage:"),
        "{text}"
    );
    let text = f
        .run("w.rhai", &["--outdir", "d", "--batch-size", "many"])
        .unwrap_err()
        .render();
    assert!(
        text.contains("--batch-size: 'many' is not an integer"),
        "{text}"
    );
}

#[test]
fn exit_code_comes_from_the_script() {
    let f = Fixture::new(&[
        ("a.rhai", "print(1);\nexit(3);\nprint(2);\n"),
        ("b.rhai", "42\n"),
    ]);
    assert_eq!(f.run("a.rhai", &[]).unwrap(), 3);
    assert_eq!(f.output(), "1\n");
    assert_eq!(
        f.run("b.rhai", &[]).unwrap(),
        0,
        "a last expression is not an exit status"
    );
}

#[test]
fn read_tickers_handles_csv_headers_blanks_duplicates_and_bad_symbols() {
    let f = Fixture::new(&[
        (
            "u.csv",
            "Name,Ticker\nApple,AAPL\n,\nMicrosoft,MSFT\nApple,AAPL\n",
        ),
        ("plain.txt", "MSFT\n\n  BRK.A \n# comment\nMSFT\n"),
        ("bad.txt", "AAPL\nA/B\n"),
        (
            "t.rhai",
            r#"print(read_tickers(`${script_dir()}/u.csv`));
print(read_tickers(`${script_dir()}/plain.txt`));
read_tickers(`${script_dir()}/bad.txt`);
"#,
        ),
    ]);
    let text = runtime_error(f.run("t.rhai", &[]));
    assert_eq!(f.output(), "[\"AAPL\", \"MSFT\"]\n[\"MSFT\", \"BRK.A\"]\n");
    assert!(
        text.contains("t.rhai:3:1: read_tickers: 1 invalid symbol in"),
        "{text}"
    );
    assert!(text.contains("line 2: invalid ticker 'A/B'"), "{text}");
}

#[test]
fn chunk_and_set_operations_keep_order() {
    let f = Fixture::new(&[(
        "c.rhai",
        r#"let u = ["A", "B", "C", "D", "E"];
print(chunk(u, 2));
print(difference(u, ["B", "D"]));
print(intersection(u, ["E", "A", "Z"]));
print(union(["B"], u));
"#,
    )]);
    assert_eq!(f.run("c.rhai", &[]).unwrap(), 0);
    assert_eq!(
        f.output(),
        "[[\"A\", \"B\"], [\"C\", \"D\"], [\"E\"]]\n[\"A\", \"C\", \"E\"]\n[\"A\", \"E\"]\n[\"B\", \"A\", \"C\", \"D\", \"E\"]\n"
    );
}

#[test]
fn syntax_error_shows_file_line_column_and_a_caret() {
    let f = Fixture::new(&[("s.rhai", "let a = 1;\nlet b = a +;\n")]);
    let err = f.run("s.rhai", &[]).unwrap_err();
    assert!(matches!(err, ScriptError::Syntax(_)), "{err:?}");
    let file = f.path("s.rhai").display().to_string();
    assert_eq!(
        err.render(),
        format!("{file}:2:12: syntax error: Unexpected ';'\n 2 | let b = a +;\n   |            ^")
    );
}

#[test]
fn runtime_error_shows_the_line_and_caret_of_the_failing_call() {
    let f = Fixture::new(&[("r.rhai", "let u = [\"A\"];\n  let b = chunk(u, 0);\n")]);
    let file = f.path("r.rhai").display().to_string();
    assert_eq!(
        runtime_error(f.run("r.rhai", &[])),
        format!(
            "{file}:2:11: chunk: the batch size must be at least 1, got 0\n 2 |   let b = chunk(u, 0);\n   |           ^"
        )
    );
}

#[test]
fn error_inside_an_imported_function_points_into_the_module_file() {
    let f = Fixture::new(&[
        (
            "scripts/main.rhai",
            "import \"lib/retry\" as retry;\nlet n = retry::plan(#{});\n",
        ),
        (
            "scripts/lib/retry.rhai",
            "fn plan(cfg) {\n    cfg.max_attempts + 1\n}\n",
        ),
    ]);
    // Relative to the script's folder, not to the current directory.
    let text = runtime_error(f.run("scripts/main.rhai", &[]));
    let lib = f.path("scripts/lib/retry.rhai").display().to_string();
    let main = f.path("scripts/main.rhai").display().to_string();
    assert!(text.starts_with(&format!("{lib}:2:9: Property not found: max_attempts\n 2 |     cfg.max_attempts + 1\n   |         ^")), "{text}");
    assert!(
        text.contains(&format!("in function 'plan' called at {main}:2:16")),
        "{text}"
    );
}

#[test]
fn syntax_error_in_an_imported_module_points_into_the_module() {
    let f = Fixture::new(&[
        ("m.rhai", "import \"helpers\" as h;\n"),
        ("helpers.rhai", "fn ok() { 1 }\nlet = 2;\n"),
    ]);
    let err = f.run("m.rhai", &[]).unwrap_err();
    let text = err.render();
    assert!(matches!(err, ScriptError::Syntax(_)), "{text}");
    assert!(
        text.starts_with(&format!(
            "{}:2:5: syntax error",
            f.path("helpers.rhai").display()
        )),
        "{text}"
    );
    assert!(text.contains("in module 'helpers' imported at"), "{text}");
}

#[test]
fn relative_import_works_from_another_current_directory() {
    let f = Fixture::new(&[
        (
            "proj/run.rhai",
            "import \"util\" as u;\nprint(u::double(21));\n",
        ),
        ("proj/util.rhai", "fn double(x) { x * 2 }\n"),
    ]);
    assert_ne!(std::env::current_dir().unwrap(), f.path("proj"));
    assert_eq!(f.run("proj/run.rhai", &[]).unwrap(), 0);
    assert_eq!(f.output(), "42\n");
}

fn cancel_after(flag: &CancelFlag, delay: Duration) -> std::thread::JoinHandle<()> {
    let flag = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        flag.cancel();
    })
}

#[test]
fn infinite_loop_is_stopped_by_the_cancel_flag() {
    let f = Fixture::new(&[("spin.rhai", "let n = 0;\nloop { n += 1; }\n")]);
    let t = cancel_after(&f.cancel, Duration::from_millis(300));
    let start = Instant::now();
    let err = f.run("spin.rhai", &[]).unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, ScriptError::Cancelled), "{err:?}");
    assert_eq!(err.exit_code(), 130);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn sleep_is_interrupted_by_the_cancel_flag_and_cannot_be_caught() {
    let f = Fixture::new(&[(
        "nap.rhai",
        "try { sleep(600); } catch { print(\"caught\"); }\nprint(\"after\");\n",
    )]);
    let t = cancel_after(&f.cancel, Duration::from_millis(200));
    let start = Instant::now();
    let err = f.run("nap.rhai", &[]).unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, ScriptError::Cancelled), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(f.output(), "");
}

#[test]
fn unknown_option_key_is_an_error_naming_the_known_ones() {
    let f = Fixture::new(&[(
        "o.rhai",
        // A map built before the call: the run-time check (a literal map passed to
        // the call is caught before the script starts, see tests/check.rs).
        "let o = #{outdir: \"d\", from: \"2020-01-01\", to: \"2020-01-31\", timout: 5};\nlet h = spawn_batch([\"AAPL\"], o);\n",
    )]);
    let text = runtime_error(f.run("o.rhai", &[]));
    assert!(
        text.contains("spawn_batch: unknown option 'timout' (did you mean 'timeout'?)"),
        "{text}"
    );
    assert!(
        text.contains("known options: outdir, from, to, adjusted"),
        "{text}"
    );
    assert!(
        !f.path("runs").exists(),
        "no run folder for a refused batch"
    );
}

#[test]
fn fetch_options_are_validated_too() {
    let f = Fixture::new(&[(
        "o.rhai",
        "let o = #{retry: 2};\nfetch_minute_bars(\"AAPL\", \"2024-01-02\", \"2024-01-02\", o);\n",
    )]);
    let text = runtime_error(f.run("o.rhai", &[]));
    assert!(
        text.contains("fetch_minute_bars: unknown option 'retry' (did you mean 'retries'?)"),
        "{text}"
    );
}

#[test]
fn env_refuses_the_api_key_variables() {
    let f = Fixture::new(&[(
        "e.rhai",
        "print(env(\"BARSMITH_SURELY_UNSET_VAR\") == ());\nprint(env(\"PATH\") != ());\nenv(\"POLYGON_API_KEY\");\n",
    )]);
    let text = runtime_error(f.run("e.rhai", &[]));
    assert_eq!(f.output(), "true\ntrue\n");
    assert!(
        text.contains(":3:1: env: POLYGON_API_KEY holds the API key"),
        "{text}"
    );
    let f = Fixture::new(&[("e.rhai", "env(\"massive_api_key\");\n")]);
    assert!(runtime_error(f.run("e.rhai", &[])).contains("holds the API key"));
}

#[test]
fn json_and_csv_files_round_trip() {
    let f = Fixture::new(&[(
        "io.rhai",
        r#"let p = `${script_dir()}/out/state.json`;
write_json(p, #{done: ["A"], n: 2, none: ()});
let s = read_json(p);
print(`${s.done}|${s.n}|${s.none}`);
write_csv(`${script_dir()}/out/failed.csv`, [#{ticker: "A", kind: "timeout"}], ["ticker", "kind", "message"]);
"#,
    )]);
    assert_eq!(f.run("io.rhai", &[]).unwrap(), 0);
    assert_eq!(f.output(), "[\"A\"]|2|\n");
    assert_eq!(
        std::fs::read_to_string(f.path("out/failed.csv")).unwrap(),
        "ticker,kind,message\nA,timeout,\n"
    );
}

#[test]
fn completed_tickers_of_a_missing_outdir_is_empty() {
    let f = Fixture::new(&[(
        "c.rhai",
        "print(completed_tickers(`${script_dir()}/nowhere/minute`, \"2020-01-01\", \"2020-12-31\"));\nprint(missing_ranges(`${script_dir()}/nowhere/minute`, \"AAPL\", \"2020-01-01\", \"2020-12-31\"));\n",
    )]);
    assert_eq!(f.run("c.rhai", &[]).unwrap(), 0);
    assert_eq!(
        f.output(),
        "[]\n[#{\"from\": \"2020-01-01\", \"to\": \"2020-12-31\"}]\n"
    );
    assert!(!f.path("nowhere").exists());
}

#[test]
fn a_typo_in_a_variable_is_caught_before_the_script_starts() {
    let f = Fixture::new(&[(
        "t.rhai",
        "print(\"started\");\nlet batch_size = 3;\nprint(bach_size);\n",
    )]);
    let err = f.run("t.rhai", &[]).unwrap_err();
    assert!(matches!(err, ScriptError::Syntax(_)), "{err:?}");
    assert!(
        err.render()
            .contains(":3:7: syntax error: Undefined variable: bach_size"),
        "{}",
        err.render()
    );
    assert_eq!(f.output(), "");
}

#[test]
fn fns_lists_the_mission_primitives_with_docs() {
    let docs = barsmith::script::docs::primitives();
    for name in [
        "fetch_minute_bars",
        "chunk",
        "spawn_batch",
        "completed_tickers",
    ] {
        let d = docs
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            d.signature.starts_with(&format!("{name}(")),
            "{}",
            d.signature
        );
        assert!(
            d.doc.len() > 40 && d.doc.contains("Example:"),
            "{name}: {}",
            d.doc
        );
    }
    let chunk = docs.iter().find(|d| d.name == "chunk").unwrap();
    assert_eq!(chunk.signature, "chunk(items: array, n: int) -> array");
    assert_eq!(chunk.theme, "collections");
    let text =
        barsmith::script::docs::render_text(&barsmith::script::docs::matching(Some("batches")));
    assert!(
        text.starts_with("Batches of worker processes (batches)"),
        "{text}"
    );
    assert!(
        text.contains("spawn_batch(tickers: array, opts: map) -> BatchHandle"),
        "{text}"
    );
    let md = barsmith::script::docs::render_markdown(&docs);
    assert!(
        md.contains(
            "### `completed_tickers(outdir: string, from: Date|string, to: Date|string) -> array`"
        ),
        "{md}"
    );
}

#[test]
fn the_engine_is_the_same_for_every_entry_point() {
    // The REPL and tests build the engine the same way `run` does.
    let f = Fixture::new(&[]);
    let host = Host::with_output(f.config(), Output::Capture(f.out.clone()));
    let engine = barsmith::script::engine::build(host);
    let n: i64 = engine.eval("chunk([1, 2, 3], 2).len()").unwrap();
    assert_eq!(n, 2);
    engine.run("print(now().unix > 0.0)").unwrap();
    assert_eq!(f.output(), "true\n");
}

fn sandbox(faults: &[&str]) -> Sandbox {
    let cfg = SandboxConfig {
        faults: FaultPlan::parse(faults).unwrap(),
        hang_for: Duration::from_secs(20),
        ..SandboxConfig::default()
    };
    Sandbox::start_background(cfg).unwrap()
}

fn sandbox_config(f: &Fixture, sb: &Sandbox) -> HostConfig {
    HostConfig {
        base_url: Some(sb.base_url()),
        api_key: Some(ApiKey::new(SANDBOX_API_KEY)),
        ..f.config()
    }
}

#[test]
fn fetched_bars_print_as_a_table_and_index_to_maps() {
    let sb = sandbox(&[]);
    let f = Fixture::new(&[(
        "f.rhai",
        r#"let b = fetch_minute_bars("AAPL", "2024-01-02", "2024-01-03");
print(b.len());
print(b[0].close == b.first().close && b[-1].timestamp == b.last().timestamp);
let n = 0;
for bar in b { n += 1; }
print(n == b.len());
print(b);
"#,
    )]);
    assert_eq!(
        f.run_with(sandbox_config(&f, &sb), "f.rhai", &[]).unwrap(),
        0
    );
    let range = DateRange::parse("2024-01-02", "2024-01-03").unwrap();
    let expected = synth::bars_for("AAPL", range, sb.config());
    assert!(expected.len() > 10);
    let out = f.output();
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), expected.len().to_string());
    assert_eq!(lines.next().unwrap(), "true");
    assert_eq!(lines.next().unwrap(), "true");
    let table = lines.next().unwrap();
    assert!(
        table.starts_with(&format!(
            "Bars AAPL: {} bars from 2024-01-02 ",
            expected.len()
        )),
        "{out}"
    );
    assert!(out.contains("... ") && out.contains("close"), "{out}");
}

#[test]
fn fetch_errors_are_classified_maps_scripts_can_catch() {
    let sb = sandbox(&["NOPE=403"]);
    let f = Fixture::new(&[(
        "e.rhai",
        r#"try {
    fetch_minute_bars("NOPE", "2024-01-02", "2024-01-02", #{retries: 1});
} catch (e) {
    print(`${e.class}/${e.kind}/${e.status}/${e.ticker}`);
}
fetch_minute_bars("NOPE", "2024-01-02", "2024-01-02");
"#,
    )]);
    let text = runtime_error(f.run_with(sandbox_config(&f, &sb), "e.rhai", &[]));
    assert_eq!(f.output(), "ticker/not_entitled/403/NOPE\n");
    assert!(
        text.contains(":6:1: fetch_minute_bars NOPE: ")
            && text.contains("[ticker/not_entitled]\n 6 | fetch_minute_bars"),
        "{text}"
    );
}

#[test]
fn a_hung_fetch_is_stopped_by_the_cancel_flag() {
    let sb = sandbox(&["SLOW=hang"]);
    let f = Fixture::new(&[(
        "h.rhai",
        "fetch_minute_bars(\"SLOW\", \"2024-01-02\", \"2024-01-02\");\n",
    )]);
    let t = cancel_after(&f.cancel, Duration::from_millis(300));
    let start = Instant::now();
    let err = f
        .run_with(sandbox_config(&f, &sb), "h.rhai", &[])
        .unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, ScriptError::Cancelled), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_script_runs_two_batches_against_the_sandbox_and_waits_for_both() {
    let sb = sandbox(&["NOPE=403"]);
    let f = Fixture::new(&[(
        "two.rhai",
        r#"let cfg = args(#{ outdir: (), from: "2024-01-02", to: "2024-01-05" });
let opts = #{ outdir: cfg.outdir, from: cfg.from, to: cfg.to, retries: 1, timeout: 60 };
let a = spawn_batch(["AAPL", "MSFT"], opts + #{ label: "first" });
let b = spawn_batch(["NOPE", "IBM"], opts);
print(running() <= 2);
let pending = [a, b];
let results = [];
while pending.len() > 0 {
    let done = wait_any(pending);
    pending.remove(done.index);
    results.push(done.result);
}
results.sort(|x, y| x.id - y.id);
for r in results {
    print(`${r.id} ${r.success} ${r.ok} ${r.failed} ${r.exit}`);
}
let nope = results[1].tickers.filter(|t| t.ticker == "NOPE")[0];
print(`${nope.status} ${nope.error.class} ${nope.error.kind}`);
print(completed_tickers(cfg.outdir, cfg.from, cfg.to));
"#,
    )]);
    let outdir = f.path("data/minute");
    let config = HostConfig {
        worker: Some(WorkerCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_barsmith")),
            args_prefix: vec!["ingest".into()],
        }),
        worker_env: vec![(
            "BARSMITH_STATE_DIR".into(),
            f.path("state").display().to_string(),
        )],
        run_dir: Some(f.path("run")),
        ..sandbox_config(&f, &sb)
    };
    let code = f.run_with(
        config,
        "two.rhai",
        &["--outdir", &outdir.display().to_string()],
    );
    let out = f.output();
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(
        out.contains("\ntrue\n1 true [\"AAPL\", \"MSFT\"] [] 0\n2 false [\"IBM\"] [\"NOPE\"] 3\n"),
        "{out}"
    );
    assert!(
        out.starts_with(&format!("run folder: {}", f.path("run").display())),
        "{out}"
    );
    assert!(
        out.contains("COMPLETED WITH FAILURES: 1/2 batches OK"),
        "summary printed: {out}"
    );
    assert!(
        out.contains("failed ticker not_entitled\n[\"AAPL\", \"IBM\", \"MSFT\"]\n"),
        "{out}"
    );
    let joblog = std::fs::read_to_string(f.path("run/joblog.jsonl")).unwrap();
    assert_eq!(joblog.lines().count(), 2, "{joblog}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("run/run.json")).unwrap()).unwrap();
    assert_eq!(run["exit"], 0, "{run}");
    assert!(
        run["script"].as_str().unwrap().ends_with("two.rhai"),
        "{run}"
    );
    assert_eq!(
        run["flags"]["outdir"],
        outdir.display().to_string(),
        "{run}"
    );
}

#[test]
fn cancel_while_waiting_stops_the_batches_and_writes_the_records() {
    let sb = sandbox(&["SLOW=hang"]);
    let f = Fixture::new(&[(
        "hang.rhai",
        r#"let h = spawn_batch(["SLOW"], #{ outdir: `${script_dir()}/data/minute`, from: "2024-01-02", to: "2024-01-02" });
let r = wait(h);
print("not reached");
"#,
    )]);
    let config = HostConfig {
        worker: Some(WorkerCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_barsmith")),
            args_prefix: vec!["ingest".into()],
        }),
        worker_env: vec![(
            "BARSMITH_STATE_DIR".into(),
            f.path("state").display().to_string(),
        )],
        run_dir: Some(f.path("run")),
        grace: Some(Duration::from_secs(1)),
        ..sandbox_config(&f, &sb)
    };
    let t = cancel_after(&f.cancel, Duration::from_millis(700));
    let start = Instant::now();
    let err = f.run_with(config, "hang.rhai", &[]).unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, ScriptError::Cancelled), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(!f.output().contains("not reached"));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("run/run.json")).unwrap()).unwrap();
    assert_eq!(run["exit"], 130, "{run}");
    let joblog = std::fs::read_to_string(f.path("run/joblog.jsonl")).unwrap();
    assert_eq!(joblog.lines().count(), 1, "{joblog}");
}
