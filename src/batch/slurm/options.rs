//! What `sbatch` is asked for: partition, account, time and memory, from the run's
//! flags, with a time limit derived from the batch timeout when none is given.

use std::time::Duration;

/// Slurm settings of a run (`barsmith run --executor slurm --slurm-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`; `None` = the cluster's default partition.
    pub partition: Option<String>,
    /// `--account`; `None` = the user's default account.
    pub account: Option<String>,
    /// `--time`, in Slurm's forms (`30`, `1:30:00`, `2-00:00:00`); `None` = derived
    /// from the batch timeout (see [`SlurmOptions::time_for`]), else the partition's.
    pub time: Option<String>,
    /// `--mem` per job (`2G`): a REST worker peaks near 150 MB, a flat-file worker
    /// under 1 GiB.
    pub mem: String,
    /// How often each job's state is read (`scontrol show job`).
    pub poll: Duration,
}

impl Default for SlurmOptions {
    fn default() -> SlurmOptions {
        SlurmOptions {
            partition: None,
            account: None,
            time: None,
            mem: "2G".into(),
            poll: Duration::from_secs(1),
        }
    }
}

impl SlurmOptions {
    /// Checks every setting, so a typo stops the run before its first job, with
    /// the fix.
    pub fn check(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--slurm-partition", &self.partition),
            ("--slurm-account", &self.account),
        ] {
            if let Some(v) = value
                && (v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.,".contains(&b)))
            {
                return Err(format!(
                    "{flag} \"{v}\" is not a Slurm name: use letters, digits, _ - . (list them with `sinfo` / `sacctmgr show assoc`)"
                ));
            }
        }
        if let Some(t) = &self.time
            && !is_slurm_time(t)
        {
            return Err(format!(
                "--slurm-time \"{t}\" is not a Slurm time: use minutes (30), H:MM:SS (1:30:00) or D-HH:MM:SS (2-00:00:00)"
            ));
        }
        let digits = self.mem.trim_end_matches(['K', 'M', 'G', 'T']);
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || self.mem.len() > digits.len() + 1
        {
            return Err(format!(
                "--slurm-mem \"{}\" is not a Slurm size: use a number with K, M, G or T, e.g. 2G",
                self.mem
            ));
        }
        if self.poll.is_zero() {
            return Err("--slurm-poll must be more than 0 seconds".into());
        }
        Ok(())
    }

    /// The job's `--time`: the one given, else the attempt's limit (timeout + grace)
    /// rounded up to whole minutes (Slurm's unit) plus one minute, so the runner's
    /// own timeout, with its partial results, always comes first; else none.
    pub fn time_for(&self, limit: Option<Duration>) -> Option<String> {
        if let Some(t) = &self.time {
            return Some(t.clone());
        }
        limit.map(|l| (l.as_secs().div_ceil(60) + 1).to_string())
    }
}

/// Slurm's time forms: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
fn is_slurm_time(t: &str) -> bool {
    let number = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(number) && parts.len() <= 3 && parts.iter().all(|p| number(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_limit_comes_from_the_flag_or_the_batch_timeout() {
        let o = SlurmOptions::default();
        assert_eq!(o.time_for(None), None);
        assert_eq!(
            o.time_for(Some(Duration::from_secs(60))).as_deref(),
            Some("2")
        );
        assert_eq!(
            o.time_for(Some(Duration::from_secs(610))).as_deref(),
            Some("12")
        );
        let given = SlurmOptions {
            time: Some("1:00:00".into()),
            ..o
        };
        assert_eq!(
            given.time_for(Some(Duration::from_secs(60))).as_deref(),
            Some("1:00:00")
        );
    }

    #[test]
    fn typos_are_refused_with_the_forms_to_use() {
        let with = |f: fn(&mut SlurmOptions)| {
            let mut o = SlurmOptions::default();
            f(&mut o);
            o.check()
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|o| o.time = Some("2-00:00:00".into())).is_ok());
        assert!(with(|o| o.time = Some("90".into())).is_ok());
        assert!(with(|o| o.partition = Some("gpu-long".into())).is_ok());
        let err = with(|o| o.time = Some("1h".into())).unwrap_err();
        assert!(
            err.starts_with("--slurm-time \"1h\" is not a Slurm time"),
            "{err}"
        );
        assert!(with(|o| o.time = Some("1:2:3:4".into())).is_err());
        let err = with(|o| o.mem = "2GB".into()).unwrap_err();
        assert!(err.contains("e.g. 2G"), "{err}");
        assert!(with(|o| o.mem = "G".into()).is_err());
        assert!(with(|o| o.partition = Some("a b".into())).is_err());
        assert!(with(|o| o.account = Some(String::new())).is_err());
        assert!(with(|o| o.poll = Duration::ZERO).is_err());
    }
}
