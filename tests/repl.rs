//! `barsmith repl` end to end: a piped session that diagnoses and repairs a ticker a
//! real `barsmith run` left failed, and a pseudo-terminal session for line editing,
//! completion, history and Ctrl-C during a hanging fetch and a running batch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use barsmith::calendar::DateRange;
use barsmith::sandbox::synth;
use common::{Fixture, stderr};

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";
/// Longest any one REPL session of these tests may take.
const SESSION_LIMIT: Duration = Duration::from_secs(90);

/// Runs `cmd` with `input` on stdin (then closed), killed after [`SESSION_LIMIT`].
fn run_with_input(cmd: Command, input: &str) -> Output {
    common::run_with_input(cmd, input, SESSION_LIMIT)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `barsmith repl` against the fixture's sandbox, with extra arguments.
fn repl(fx: &Fixture, args: &[&str]) -> Command {
    let mut cmd = fx.barsmith();
    cmd.args(["repl", "--base-url", &fx.sandbox.base_url()])
        .args(args);
    cmd
}

/// Runs the bundled wrapper for AAPL and MSFT with one request retry, one try and one
/// pass, so the sandbox's `AAPL=500:4` fault leaves AAPL failed. Returns the run folder.
fn failed_run(fx: &Fixture) -> PathBuf {
    std::fs::write(fx.dir.path().join("universe.csv"), "ticker\nAAPL\nMSFT\n").unwrap();
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai");
    let mut cmd = fx.barsmith();
    cmd.args(["run", "--run-dir", "runs/first", "--progress", "none"])
        .args(["--base-url", &fx.sandbox.base_url()])
        .arg(&wrapper)
        .args(["--tickers-csv", "universe.csv", "--from", FROM, "--to", TO])
        .args(["--outdir", "data/minute", "--max-rps", "1000"])
        .args(["--request-retries", "2", "--request-timeout", "10"])
        .args(["--tries", "1", "--passes", "1"]);
    let out = common::run(cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        fx.sandbox.stats().by_ticker.get("AAPL"),
        Some(&2),
        "the worker must have spent 2 of AAPL's 4 faulty answers"
    );
    fx.dir.path().join("runs/first")
}

#[test]
fn a_piped_session_finds_a_failed_ticker_fetches_it_and_reingests_it() {
    let fx = Fixture::with_faults(&["AAPL=500:4"]);
    let run_dir = failed_run(&fx);
    let expected = synth::bars_for(
        "AAPL",
        DateRange::parse(FROM, TO).unwrap(),
        fx.sandbox.config(),
    )
    .len();
    let session = format!(
        r#"let f = failures(run_dir);
print(`failed: ${{f.len()}} ${{f[0].ticker}} ${{f[0].class}}/${{f[0].kind}} status ${{f[0].status}} batch ${{f[0].batch}}`);
f[0]
print(batch_log(run_dir, f[0].batch, #{{grep: "ticker_failed", tail: 1}}));
let path = "/v2/aggs/ticker/AAPL/range/1/minute/{FROM}/{TO}";
print(`request: ${{request(path).status}}`);
print(`request: ${{request(path).status}}`);
let r = request(path);
print(`request: ${{r.status}} ${{r.headers["content-type"]}}`);
let bars = fetch_minute_bars("AAPL", "{FROM}", "{TO}");
print(`fetched: ${{bars.len()}}`);
bars
let done = ingest(["AAPL"], #{{
    outdir: "data/minute", from: "{FROM}", to: "{TO}",
    max_rps: 1000,
}});
print(`ingest: ${{done.AAPL.status}} ${{done.AAPL.bars}}`);
print(`missing: ${{missing_ranges("data/minute", "AAPL", "{FROM}", "{TO}")}}`);
coverage("data/minute", "AAPL")
"#
    );
    let out = run_with_input(repl(&fx, &["--run", run_dir.to_str().unwrap()]), &session);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{text}\nstderr:\n{err}"
    );
    assert!(
        text.contains("failed: 1 AAPL retryable/server status 500 batch 1"),
        "{text}\n{err}"
    );
    // A map prints pretty: one key per line, sorted, indented.
    assert!(
        text.contains(
            "#{\n  attempt: 1,\n  batch: 1,\n  class: \"retryable\",\n  from: \"2024-03-04\",\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  ticker: \"AAPL\",\n  to: \"2024-03-08\",\n}"),
        "{text}"
    );
    assert!(text.contains("\"event\":\"ticker_failed\""), "{text}");
    assert!(
        text.contains("request: 500\nrequest: 500\nrequest: 200 application/json"),
        "the fault clears after 4 requests: {text}"
    );
    assert!(text.contains(&format!("fetched: {expected}")), "{text}");
    assert!(
        text.contains(&format!("Bars AAPL: {expected} bars from")),
        "a Bars value prints as its table: {text}"
    );
    assert!(
        text.contains(&format!("ingest: ok {expected}")),
        "{text}\n{err}"
    );
    assert!(text.contains("missing: []"), "{text}");
    assert!(
        text.contains(&format!(r#"[#{{from: "{FROM}", to: "{TO}"}}]"#)),
        "{text}"
    );
    // Live ingest output, one line per event.
    assert!(err.contains("AAPL: page of"), "{err}");
    assert!(
        err.contains(&format!("AAPL: done, {expected} bars")),
        "{err}"
    );
    // The key never shows.
    assert!(!text.contains("Bearer") && !err.contains("Bearer"));
    let stored = fx
        .store()
        .read_bars("AAPL", DateRange::parse(FROM, TO).unwrap())
        .unwrap();
    assert_eq!(stored.len(), expected);
}

#[test]
fn scripts_given_on_the_command_line_load_like_colon_load() {
    let fx = Fixture::with_faults(&[]);
    std::fs::write(
        fx.dir.path().join("lib.rhai"),
        "/// Twice `x`.\nfn double(x) { x * 2 }\nlet base = 21;\n",
    )
    .unwrap();
    std::fs::write(fx.dir.path().join("more.rhai"), "let extra = 1;\n").unwrap();
    let out = run_with_input(
        repl(&fx, &["lib.rhai"]),
        "double(base)\n:load more.rhai\nbase + extra\n:doc double\n:vars\n",
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.starts_with("42\n22\n"), "{text}");
    assert!(
        text.contains("double(x) (script function)\n      Twice `x`."),
        "{text}"
    );
    assert!(text.contains("let base: i64 = 21"), "{text}");
}

#[test]
fn bad_input_gets_a_one_line_message_and_the_session_goes_on() {
    let fx = Fixture::with_faults(&[]);
    let out = run_with_input(
        repl(&fx, &[]),
        ":nope\n:load missing.rhai\nfailures(\"no/such/run\")\nbatch_log(\"x\", 1, #{tial: 3})\nlet x = ;\n1 + 1\n",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "piped input with errors exits 1"
    );
    assert_eq!(text, "2\n", "the session continues after errors");
    assert!(
        err.contains("unknown command :nope; commands: :help"),
        "{err}"
    );
    assert!(err.contains(":load: cannot read missing.rhai: "), "{err}");
    assert!(
        err.contains("failures: no run folder at no/such/run"),
        "{err}"
    );
    assert!(
        err.contains("unknown option 'tial' (did you mean 'tail'?)"),
        "{err}"
    );
    assert!(err.contains("input[3]:1:9: syntax error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    for args in [&["--run", "no/such/run"][..], &["missing.rhai"][..]] {
        let out = run_with_input(repl(&fx, args), "");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn help_explains_with_an_example() {
    let fx = Fixture::with_faults(&[]);
    let out = common::run({
        let mut c = fx.barsmith();
        c.args(["repl", "--help"]);
        c
    });
    let text = stdout(&out);
    assert!(text.contains("--run <RUN_DIR>"), "{text}");
    assert!(text.contains("Example"), "{text}");
    assert!(text.contains("failures(run_dir)"), "{text}");
}

mod pty {
    use rexpect::session::{PtySession, spawn_command};

    use super::*;

    /// A fresh, empty prompt (a prompt redrawn with typed text after it does not match).
    const PROMPT: &str = "barsmith> \r";

    fn start(fx: &Fixture) -> PtySession {
        let mut cmd = repl(fx, &[]);
        cmd.env("TERM", "xterm");
        spawn_command(cmd, Some(20_000)).expect("repl starts in a pty")
    }

    fn send_line(p: &mut PtySession, line: &str) {
        p.send(line).unwrap();
        p.send("\r").unwrap();
        p.flush().unwrap();
    }

    #[test]
    fn multi_line_input_completion_and_history_on_a_terminal() {
        let fx = Fixture::with_faults(&[]);
        let mut p = start(&fx);
        p.exp_string(PROMPT).unwrap();
        send_line(&mut p, "let answer_value = 40 +");
        send_line(&mut p, "2;");
        p.exp_string(PROMPT).unwrap();
        send_line(&mut p, "answer_value");
        p.exp_string("42").unwrap();
        p.exp_string(PROMPT).unwrap();
        // Tab completes a variable in scope.
        p.send("answer_v").unwrap();
        p.send("\t").unwrap();
        p.flush().unwrap();
        p.exp_string("answer_value").unwrap();
        send_line(&mut p, " * 10");
        p.exp_string("420").unwrap();
        // Tab after a dot completes a method of the variable's type.
        p.exp_string(PROMPT).unwrap();
        send_line(&mut p, r#"let word = "abc";"#);
        p.exp_string(PROMPT).unwrap();
        p.send("word.to_up").unwrap();
        p.send("\t").unwrap();
        p.flush().unwrap();
        p.exp_string("to_upper").unwrap();
        send_line(&mut p, "()");
        p.exp_string("ABC").unwrap();
        // Ctrl-C on a half-typed line drops it and gives a new prompt.
        p.exp_string(PROMPT).unwrap();
        p.send("this is not rhai").unwrap();
        p.send_control('c').unwrap();
        p.exp_string(PROMPT).unwrap();
        send_line(&mut p, ":fns diagnose");
        p.exp_string("failures(run_dir: string) -> array").unwrap();
        p.exp_string(PROMPT).unwrap();
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
        let history = std::fs::read_to_string(fx.state_dir().join("repl_history"))
            .expect("history saved in the state dir");
        assert!(history.contains(":fns diagnose"), "{history}");
        assert!(!history.contains("this is not rhai"), "{history}");
    }

    #[test]
    fn ctrl_c_cancels_a_hanging_fetch_and_a_running_batch() {
        let fx = Fixture::with_faults(&["HANG=hang"]);
        let mut p = start(&fx);
        p.exp_string(PROMPT).unwrap();
        send_line(
            &mut p,
            r#"fetch_minute_bars("HANG", "2024-03-04", "2024-03-04", #{timeout: 60, retries: 1})"#,
        );
        std::thread::sleep(Duration::from_millis(800));
        let t0 = Instant::now();
        p.send_control('c').unwrap();
        p.exp_string("cancelled").unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        p.exp_string(PROMPT).unwrap();
        send_line(&mut p, "1 + 1");
        p.exp_string("2").unwrap();
        p.exp_string(PROMPT).unwrap();

        send_line(
            &mut p,
            r#"let h = spawn_batch(["HANG"], #{outdir: "data/minute", from: "2024-03-04", to: "2024-03-04", request_timeout: 60, retries: 1}); wait(h)"#,
        );
        std::thread::sleep(Duration::from_millis(1500));
        p.send_control('c').unwrap();
        p.exp_string("cancelled").unwrap();
        p.exp_string(PROMPT).unwrap();
        // The batch was stopped (and recorded) before the prompt came back.
        let joblog = common::files_below(&fx.dir.path().join("runs"))
            .into_iter()
            .find(|p| p.ends_with("joblog.jsonl"))
            .expect("a run folder with a joblog");
        let text = std::fs::read_to_string(joblog).unwrap();
        assert!(text.contains("\"killed\":true"), "{text}");
        send_line(&mut p, ":quit");
        p.exp_eof().unwrap();
    }
}
