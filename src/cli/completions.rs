//! `barsmith completions SHELL`: shell completion scripts generated from the same
//! clap definitions as `--help`, so they never drift.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

/// Flags of `barsmith completions`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  barsmith completions bash > ~/.local/share/bash-completion/completions/barsmith\n  barsmith completions zsh > ~/.zfunc/_barsmith\n  barsmith completions fish > ~/.config/fish/completions/barsmith.fish"
)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script on stdout.
pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::command();
    clap_complete::generate(args.shell, &mut cmd, "barsmith", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
