//! A single-node Slurm cluster on this machine for the Slurm executor's tests:
//! Debian's `slurm-wlm` and `munge` (installed by .ci/run), each cluster with its own
//! munge socket and key, ports, state and spool in a private folder, so clusters of
//! tests running at once never meet. The daemons run in the foreground as children
//! under `timeout` (they end even if the test process dies) and are stopped on drop,
//! after the cluster's jobs are cancelled. Clients reach them on 127.0.0.1 only.
//!
//! slurmd runs jobs as their user, so it needs root: CI runs as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any daemon of a test cluster lives.
const LIFETIME_S: &str = "900";

/// A running single-node cluster; stopped on drop.
pub struct SlurmCluster {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl SlurmCluster {
    /// Starts munged, slurmctld and slurmd and waits until the node is idle.
    pub fn start() -> SlurmCluster {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the Slurm tests start slurmd, which needs root (CI runs as root)"
        );
        // Short path: munge's socket path must fit in a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("bsl-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("state")).unwrap();
        std::fs::create_dir_all(d.join("spool")).unwrap();
        let mut key = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key)
            .unwrap();
        std::fs::write(d.join("munge.key"), key).unwrap();
        chmod(&d.join("munge.key"), 0o400);
        chmod(d, 0o700);
        std::fs::write(d.join("slurm.conf"), slurm_conf(d)).unwrap();
        let mut cluster = SlurmCluster {
            dir,
            daemons: Vec::new(),
        };
        let d = cluster.dir.path().to_path_buf();
        cluster.daemon(Command::new("munged").args(["-F", "-f"]).args([
            format!("--socket={}", d.join("munge.sock").display()),
            format!("--key-file={}", d.join("munge.key").display()),
            format!("--pid-file={}", d.join("munged.pid").display()),
            format!("--log-file={}", d.join("munged.log").display()),
            format!("--seed-file={}", d.join("munged.seed").display()),
        ]));
        cluster.wait_for("munge socket", || d.join("munge.sock").exists());
        cluster.daemon(Command::new("slurmctld").args(["-D", "-i"]));
        let conf = cluster.conf();
        cluster.wait_for("slurmctld", || {
            client(&conf, "scontrol")
                .arg("ping")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
        });
        cluster.daemon(Command::new("slurmd").arg("-D"));
        cluster.wait_for("an idle node", || {
            client(&conf, "sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    /// The cluster's slurm.conf, for `SLURM_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command (`sbatch`, `squeue`, ...) pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        client(&self.conf(), program)
    }

    /// `squeue` of every job this cluster still knows, as `id state` lines.
    pub fn jobs(&self) -> Vec<String> {
        let out = self
            .command("squeue")
            .args(["-h", "-t", "all", "-o", "%i %T"])
            .output()
            .expect("squeue runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (at most `limit`) until some job is in `state`; returns its id.
    pub fn wait_for_job(&self, state: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(line) = self.jobs().iter().find(|l| l.ends_with(state)) {
                return line.split(' ').next().unwrap_or_default().to_string();
            }
            assert!(
                t0.elapsed() < limit,
                "no job {state} within {limit:?}: {:?}",
                self.jobs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn daemon(&mut self, cmd: &mut Command) {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut wrapped = Command::new("timeout");
        wrapped
            .arg(LIFETIME_S)
            .arg(&program)
            .args(cmd.get_args())
            .env("SLURM_CONF", self.conf())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = wrapped.spawn().unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}): install slurm-wlm and munge (Debian)")
        });
        self.daemons.push(child);
    }

    fn wait_for(&mut self, what: &str, ready: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !ready() {
            for child in &mut self.daemons {
                if let Ok(Some(exit)) = child.try_wait() {
                    panic!(
                        "a Slurm daemon exited ({exit}) before {what} was ready; logs in {}",
                        self.dir.path().display()
                    );
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{what} not ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        // Jobs first, so no worker outlives the test, then the daemons, last started
        // first (SIGTERM, which `timeout` passes on).
        let _ = self.command("scancel").args(["--user", "root"]).output();
        let t0 = Instant::now();
        while !self
            .jobs()
            .iter()
            .all(|l| !l.ends_with("RUNNING") && !l.ends_with("COMPLETING"))
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for child in self.daemons.iter_mut().rev() {
            // SAFETY: a signal to our own child; no memory is involved.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

fn client(conf: &Path, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("SLURM_CONF", conf);
    cmd
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// This machine's short host name: a node's name must be its host's.
fn short_hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The settings (linuxproc, no task plugin, no accounting, cons_tres), plus
/// what makes a test cluster quick: batch jobs scheduled at once (`batch_sched_delay`
/// is 3 s by default), 2 s from SIGTERM to SIGKILL, no grace over time limits, and a
/// node that claims 8 CPUs and 16 GB whatever this machine has.
fn slurm_conf(d: &Path) -> String {
    let host = short_hostname();
    let (ctld, slurmd) = (super::moto::free_port(), super::moto::free_port());
    let p = |name: &str| d.join(name).display().to_string();
    format!(
        "ClusterName=barsmith-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={ctld_pid}
SlurmdPidFile={d_pid}
SlurmctldLogFile={ctld_log}
SlurmdLogFile={d_log}
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
",
        sock = p("munge.sock"),
        state = p("state"),
        spool = p("spool"),
        ctld_pid = p("ctld.pid"),
        d_pid = p("d.pid"),
        ctld_log = p("ctld.log"),
        d_log = p("d.log"),
    )
}
