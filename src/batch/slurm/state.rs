//! Reading a Slurm job's state from `scontrol show job --oneliner`, and what each
//! state means for the attempt.

use super::super::executor::{EngineStop, ExitInfo};

/// Where a job stands, as far as the runner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting for resources: a signal would not reach it, only `scancel` ends it.
    Pending,
    /// Running, or in a state it leaves by itself (completing, suspended, requeued).
    Active,
    /// Over, for good.
    Ended(ExitInfo),
}

/// The state in one `scontrol show job -o <id>` line, `None` when the line has no
/// `JobState=` (not a job line).
pub(crate) fn parse_scontrol(line: &str) -> Option<JobState> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|tok| tok.strip_prefix(name)?.strip_prefix('='))
    };
    let state = field("JobState")?;
    let (code, signal) = field("ExitCode").map(parse_exit_code).unwrap_or((0, 0));
    Some(classify(state, code, signal))
}

/// `3:0` → (3, 0): Slurm's `exit status:signal`.
fn parse_exit_code(text: &str) -> (i32, i32) {
    let mut parts = text.splitn(2, ':');
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// Maps a Slurm state name (see `squeue --help`'s state list) to the runner's view.
/// Unknown names count as active: the runner's own timeout still bounds the attempt,
/// while calling a live job over could start its retry beside it.
fn classify(state: &str, code: i32, signal: i32) -> JobState {
    let engine = |stop| {
        JobState::Ended(ExitInfo {
            code: None,
            signal: (signal > 0).then_some(signal),
            ended_by: Some(stop),
        })
    };
    match state {
        "PENDING" => JobState::Pending,
        "COMPLETED" | "FAILED" => JobState::Ended(if signal > 0 {
            ExitInfo {
                code: None,
                signal: Some(signal),
                ended_by: None,
            }
        } else {
            ExitInfo::exited(code)
        }),
        "TIMEOUT" | "DEADLINE" => engine(EngineStop::TimeLimit),
        "CANCELLED" => engine(EngineStop::Cancelled),
        "OUT_OF_MEMORY" => engine(EngineStop::OutOfMemory),
        "NODE_FAIL" | "BOOT_FAIL" => engine(EngineStop::NodeFailure),
        "PREEMPTED" => engine(EngineStop::Preempted),
        _ => JobState::Active,
    }
}

/// The state of a job the controller no longer knows.
pub(crate) fn vanished() -> JobState {
    JobState::Ended(ExitInfo {
        code: None,
        signal: None,
        ended_by: Some(EngineStop::Vanished),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "JobId=7 JobName=barsmith-batch-0001.attempt-1 UserId=root(0) \
        JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 \
        ExitCode=4:0 DerivedExitCode=0:0 RunTime=00:00:01 TimeLimit=00:02:00";

    #[test]
    fn a_finished_job_gives_the_workers_exit_status() {
        assert_eq!(
            parse_scontrol(LINE),
            Some(JobState::Ended(ExitInfo::exited(4)))
        );
        let done = LINE.replace("FAILED", "COMPLETED").replace("4:0", "0:0");
        assert_eq!(
            parse_scontrol(&done),
            Some(JobState::Ended(ExitInfo::exited(0)))
        );
        let killed = LINE.replace("ExitCode=4:0", "ExitCode=0:9");
        let Some(JobState::Ended(exit)) = parse_scontrol(&killed) else {
            panic!("not ended")
        };
        assert_eq!(
            (exit.code, exit.signal, exit.ended_by),
            (None, Some(9), None)
        );
    }

    #[test]
    fn the_engines_own_stops_are_named() {
        for (state, stop) in [
            ("TIMEOUT", EngineStop::TimeLimit),
            ("DEADLINE", EngineStop::TimeLimit),
            ("CANCELLED", EngineStop::Cancelled),
            ("OUT_OF_MEMORY", EngineStop::OutOfMemory),
            ("NODE_FAIL", EngineStop::NodeFailure),
            ("BOOT_FAIL", EngineStop::NodeFailure),
            ("PREEMPTED", EngineStop::Preempted),
        ] {
            let line = LINE.replace("JobState=FAILED", &format!("JobState={state}"));
            let Some(JobState::Ended(exit)) = parse_scontrol(&line) else {
                panic!("{state} not ended")
            };
            assert_eq!(exit.ended_by, Some(stop), "{state}");
            assert_eq!(
                exit.code, None,
                "{state}: the worker did not exit by itself"
            );
        }
    }

    #[test]
    fn waiting_and_running_states_are_not_ends() {
        let with = |s: &str| parse_scontrol(&LINE.replace("JobState=FAILED", s));
        assert_eq!(with("JobState=PENDING"), Some(JobState::Pending));
        for s in [
            "RUNNING",
            "COMPLETING",
            "CONFIGURING",
            "SUSPENDED",
            "REQUEUED",
            "NEWSTATE",
        ] {
            assert_eq!(
                with(&format!("JobState={s}")),
                Some(JobState::Active),
                "{s}"
            );
        }
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id"),
            None
        );
    }
}
