//! Scenario 6: the run's overhead per batch under Slurm against local processes.
//!
//! 20 batches of one complete ticker each, one at a time (`--no-resume
//! --max-concurrent 1 --batch-size 1`), so each batch's wall time is the executor's
//! own cost: spawn or `sbatch`, the scheduler placing the job, the worker's start-up,
//! noticing the end (Slurm: `scontrol` every `--slurm-poll`), records. The Slurm
//! cluster is the tests' single-node one (tests/common/slurm.rs: root, Debian's
//! slurm-wlm and munge, `batch_sched_delay=0`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{Row, base_command, row, run_child, sandbox, tickers, universe, worker};

// The tests' cluster fixture, of which the bench uses a part.
#[path = "../../tests/common/slurm.rs"]
#[allow(dead_code)]
mod cluster;

/// What tests/common/slurm.rs needs of its sibling module.
mod moto {
    pub fn free_port() -> u16 {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
        l.local_addr().expect("local addr").port()
    }
}

const BATCHES: usize = 20;
const RANGE: (&str, &str) = ("2026-06-01", "2026-06-05");

/// Runs the 20 batches locally, then as Slurm jobs polled every 1 s and 0.2 s.
pub(super) fn slurm_overhead(tmp: &Path, rows: &mut Vec<Row>) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || which("slurmctld").is_none() {
        row(
            rows,
            "6. Slurm overhead",
            "needs root and slurm-wlm".into(),
            "",
            None,
        );
        return;
    }
    let names = tickers("SL", BATCHES);
    let sandbox = sandbox(&names, Duration::ZERO, None);
    let dir = tmp.join("slurm");
    let list = universe(&dir, &names);
    let fill = run_child(
        worker(&dir, &sandbox, &names, RANGE, "1000/s"),
        &dir,
        Duration::from_secs(120),
    );
    assert_eq!(
        fill.status,
        0,
        "filling the dataset failed: see {}",
        dir.display()
    );
    let cluster = cluster::SlurmCluster::start();
    let flags = ["--no-resume", "--max-concurrent", "1", "--batch-size", "1"];
    for (label, executor) in [
        ("local", &[][..]),
        (
            "slurm, --slurm-poll 1 (default)",
            &["--executor", "slurm"][..],
        ),
        (
            "slurm, --slurm-poll 0.2",
            &["--executor", "slurm", "--slurm-poll", "0.2"][..],
        ),
    ] {
        let run_dir = dir.join(label.replace([' ', ',', '(', ')', '.'], "_"));
        fs::create_dir_all(&run_dir).expect("run dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai");
        let mut cmd = base_command(&run_dir);
        cmd.env("SLURM_CONF", cluster.conf())
            .arg("run")
            .args(executor)
            .args(["--base-url", &sandbox.base_url(), "--progress", "none"])
            .arg("--run-dir")
            .arg(run_dir.join("run"))
            .arg(script)
            .arg("--tickers-csv")
            .arg(&list)
            .args(["--from", RANGE.0, "--to", RANGE.1])
            .arg("--outdir")
            .arg(dir.join("data"))
            .args(flags);
        let p = run_child(cmd, &run_dir, Duration::from_secs(600));
        assert_eq!(p.status, 0, "{label} run failed: see {}", run_dir.display());
        let per_batch = p.wall.as_secs_f64() / BATCHES as f64;
        eprintln!(
            "slurm overhead: {label}: {BATCHES} batches in {:.2} s",
            p.wall.as_secs_f64()
        );
        row(
            rows,
            &format!("6. wall per batch, {label}"),
            format!("{:.0} ms", per_batch * 1e3),
            "",
            None,
        );
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}
