//! Local worker processes: [`LocalProcessExecutor`].
//!
//! Every worker runs in its own process group (so a stop reaches its children too, and
//! the terminal's Ctrl-C reaches only barsmith, which then decides: TERM, grace, KILL).
//! Every worker dies with its parent: `prctl(PR_SET_PDEATHSIG, SIGKILL)` in the child
//! before `exec`, plus a `getppid()` check against the pid recorded before the fork
//! (the parent may already have died between fork and prctl).
//!
//! PDEATHSIG fires when the *thread* that forked the child exits, not the process. A
//! worker spawned from a short-lived thread (a tokio blocking thread, a scoped thread)
//! would be killed the moment that thread ends. So every fork happens on one dedicated
//! spawner thread owned by the executor, which lives until the executor is dropped —
//! and dropping it kills any worker still running, which is what we want anyway.
//!
//! No zombies: when the worker has exited, [`Execution::try_wait`] first peeks with
//! `waitid(WNOWAIT)` (the zombie keeps the group id reserved), SIGKILLs whatever is
//! left in the group, then reaps. A dropped execution kills its group and reaps too.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::BatchError;
use super::executor::{Execution, Executor, ExitInfo, LaunchSpec};

type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

/// Runs each batch as a local child process (the default executor).
pub struct LocalProcessExecutor {
    requests: Option<mpsc::Sender<SpawnRequest>>,
    spawner: Option<JoinHandle<()>>,
}

impl LocalProcessExecutor {
    /// Starts the spawner thread.
    pub fn new() -> io::Result<LocalProcessExecutor> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let spawner = std::thread::Builder::new()
            .name("barsmith-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(LocalProcessExecutor {
            requests: Some(tx),
            spawner: Some(spawner),
        })
    }

    fn spawn(&self, command: Command) -> io::Result<Child> {
        let gone = || io::Error::other("the spawner thread is gone");
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((command, reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl Drop for LocalProcessExecutor {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.spawner.take() {
            let _ = t.join();
        }
    }
}

impl Executor for LocalProcessExecutor {
    fn name(&self) -> &str {
        "local"
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Execution>, BatchError> {
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (setpgid, prctl, getppid); it does not allocate.
        unsafe {
            command.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = self.spawn(command).map_err(|source| BatchError::Spawn {
            program: spec.program.display().to_string(),
            source,
        })?;
        Ok(Box::new(LocalExecution {
            pid: child.id() as libc::pid_t,
            child,
            exit: None,
        }))
    }
}

/// One local worker process (its pid is also its process group id).
struct LocalExecution {
    child: Child,
    pid: libc::pid_t,
    exit: Option<ExitInfo>,
}

impl LocalExecution {
    fn signal_group(&self, signal: libc::c_int) -> io::Result<()> {
        if self.exit.is_some() {
            return Ok(()); // reaped: the group id may belong to someone else now
        }
        // SAFETY: plain syscall. The leader is not reaped, so the group id is still ours.
        if unsafe { libc::kill(-self.pid, signal) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// True when the leader has exited (still a zombie, not reaped).
    fn leader_exited(&self) -> io::Result<bool> {
        // SAFETY: waitid with WNOWAIT only reads the state into a zeroed siginfo.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => Ok(false),
                _ => Err(err),
            };
        }
        // SAFETY: si_pid is valid for SIGCHLD-style siginfo filled by waitid.
        Ok(unsafe { info.si_pid() } != 0)
    }
}

impl Execution for LocalExecution {
    fn pid(&self) -> Option<u32> {
        Some(self.pid as u32)
    }

    fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }

    fn take_stderr(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitInfo>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        if !self.leader_exited()? {
            return Ok(None);
        }
        // A disposable worker leaves nothing behind: kill stragglers in its group while
        // the zombie leader still reserves the group id, then reap.
        self.signal_group(libc::SIGKILL)?;
        let status = self.child.wait()?;
        self.exit = Some(ExitInfo {
            code: status.code(),
            signal: status.signal(),
            ended_by: None,
        });
        Ok(self.exit)
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.signal_group(libc::SIGTERM)
    }

    fn kill(&mut self) -> io::Result<()> {
        self.signal_group(libc::SIGKILL)
    }
}

impl Drop for LocalExecution {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
