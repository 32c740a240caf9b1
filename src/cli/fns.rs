//! `barsmith fns [FILTER]`: the reference of every script primitive.

use std::process::ExitCode;

use clap::Args;

use crate::script::docs;
use crate::script::primitives::THEMES;

/// Flags of `barsmith fns`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  barsmith fns                   # every primitive, grouped by theme
  barsmith fns batches           # one theme
  barsmith fns wait              # primitives whose name contains `wait`
  barsmith fns --markdown > scripts/PRIMITIVES.md   # regenerate the checked-in reference")]
pub struct FnsArgs {
    /// Show one theme (flags, tickers, collections, store, batches, fetch, io, util)
    /// or the primitives whose name contains FILTER.
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// Print the Markdown reference (the checked-in scripts/PRIMITIVES.md) instead of
    /// plain text.
    #[arg(long)]
    pub markdown: bool,
}

/// Prints the primitives with their signatures and docs, grouped by theme.
pub fn run(args: FnsArgs) -> anyhow::Result<ExitCode> {
    let found = docs::matching(args.filter.as_deref());
    if found.is_empty() {
        let themes: Vec<&str> = THEMES.iter().map(|t| t.name).collect();
        eprintln!(
            "no primitive matches '{}'; try a theme ({}) or part of a name",
            args.filter.unwrap_or_default(),
            themes.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let text = if args.markdown {
        docs::render_markdown(&found)
    } else {
        docs::render_text(&found)
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
