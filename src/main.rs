use std::process::ExitCode;

fn main() -> ExitCode {
    barsmith::cli::main()
}
