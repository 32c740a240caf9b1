//! `.ci/run` itself: whatever the tests do, it prints the closing total, removes its
//! temporary log and exits with the tests' status. Run with a stand-in `cargo` on PATH
//! so the real toolchain is not re-entered.

use std::path::Path;
use std::process::Command;

/// Writes an executable `cargo` that succeeds for every subcommand but `test`, which
/// prints two test-binary summaries and exits with `test_status`.
fn fake_cargo(dir: &Path, test_status: i32) {
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = test ]; then\n\
         echo 'test result: ok. 5 passed; 0 failed; 0 ignored'\n\
         echo 'test result: FAILED. 2 passed; 1 failed; 0 ignored'\n\
         exit {test_status}\n\
         fi\n\
         exit 0\n"
    );
    let path = dir.join("cargo");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_ci(test_status: i32) -> (std::process::Output, tempfile::TempDir) {
    let bin = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fake_cargo(bin.path(), test_status);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    (out, tmp)
}

#[test]
fn a_failing_test_run_still_prints_the_total_cleans_up_and_keeps_its_status() {
    let (out, tmp) = run_ci(101);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout:?}");
    assert_eq!(
        stdout.lines().last(),
        Some("total: 7 passed, 1 failed"),
        "{stdout:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn a_passing_test_run_prints_the_total_and_exits_zero() {
    let (out, tmp) = run_ci(0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout:?}");
    assert!(stdout.contains("total: 7 passed, 1 failed"), "{stdout:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// `.ci/run` with a PATH of stand-ins only: `cargo` (tests pass), `apt-get` and `sudo`
/// that log their arguments to `apt.log`, the few tools the script uses, and the
/// server binaries named in `present`. Returns the output and what apt-get was asked.
fn run_ci_isolated(present: &[&str]) -> (std::process::Output, String) {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fake_cargo(bin.path(), 0);
    let apt_log = bin.path().join("apt.log");
    let mut fakes = vec![
        (
            "apt-get",
            format!("#!/bin/sh\necho \"$*\" >> '{}'\n", apt_log.display()),
        ),
        ("sudo", "#!/bin/sh\nexec \"$@\"\n".to_string()),
    ];
    for name in present {
        fakes.push((name, "#!/bin/sh\nexit 0\n".to_string()));
    }
    for (name, script) in fakes {
        let path = bin.path().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for tool in ["dirname", "mktemp", "tee", "awk", "rm", "id", "sh", "cat"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    let out = Command::new("/bin/bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .env("PATH", bin.path())
        .env("TMPDIR", tmp.path())
        .env_remove("BARSMITH_CHROMIUM")
        .output()
        .unwrap();
    (out, std::fs::read_to_string(apt_log).unwrap_or_default())
}

#[test]
fn test_servers_are_installed_quietly_only_when_missing() {
    let (out, apt) = run_ci_isolated(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        apt, "update -qq\ninstall -y -qq chromium redis-server slurm-wlm munge\n",
        "{stdout}"
    );
    assert!(
        stdout.contains("== installing chromium redis-server slurm-wlm munge"),
        "{stdout}"
    );

    let (out, apt) = run_ci_isolated(&["chromium", "munged"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(apt, "update -qq\ninstall -y -qq redis-server slurm-wlm\n");

    let (out, apt) = run_ci_isolated(&["chromium", "redis-server", "slurmctld", "munged"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(apt, "", "all are there: nothing to install");
}
