//! The `stepstone` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

/// Run AWS Step Functions state machines (Amazon States Language) on your own machine.
#[derive(Parser)]
#[command(name = "stepstone", version, about, long_about = None, after_help = EXAMPLES)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  stepstone validate examples/multi-region-deploy.asl.json
  stepstone validate deploy.asl.json --json          # ValidateStateMachineDefinition's response
  stepstone graph examples/multi-region-deploy.asl.json --format dot | dot -Tsvg > deploy.svg

Exit status: 0 when the definition is valid, 1 when it is not, 2 for an unreadable file or bad usage.";

#[derive(Subcommand)]
enum Command {
    /// Check a definition the way AWS's ValidateStateMachineDefinition does.
    ///
    /// Every problem is reported, not only the first, each with AWS's code (SCHEMA_VALIDATION_FAILED,
    /// MISSING_TRANSITION_TARGET, ...) and a JSON Pointer to where it is
    /// (/States/Deploy/Retry/0/BackoffRate). Warnings (NO_DOLLAR, NO_PATH, PASS_RESULT_IS_STATIC,
    /// and Stepstone's own STEPSTONE_EXTENSION) do not make the definition invalid.
    #[command(
        after_help = "Examples:\n  stepstone validate deploy.asl.json\n  stepstone validate deploy.asl.json --json | jq .diagnostics\n  stepstone validate express.asl.json --type express"
    )]
    Validate {
        /// The definition (Amazon States Language JSON); `-` reads standard input.
        file: PathBuf,
        /// Print ValidateStateMachineDefinition's response shape as JSON.
        #[arg(long)]
        json: bool,
        /// The kind of state machine: EXPRESS refuses `.sync` and `.waitForTaskToken`.
        #[arg(long = "type", value_enum, default_value_t = MachineKind::Standard)]
        machine_type: MachineKind,
    },
    /// Draw a definition's states and transitions, to look at an orchestration before running it.
    ///
    /// Edges carry their Choice rule, Default, or Catch with its errors; Parallel branches and Map
    /// item processors are drawn as subgraphs.
    #[command(
        after_help = "Examples:\n  stepstone graph deploy.asl.json > deploy.mmd\n  stepstone graph deploy.asl.json --format dot | dot -Tpng > deploy.png"
    )]
    Graph {
        /// The definition (Amazon States Language JSON); `-` reads standard input.
        file: PathBuf,
        /// `mermaid` (renders on GitHub and GitLab) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MachineKind {
    Standard,
    Express,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Validate {
            file,
            json,
            machine_type,
        } => {
            let machine_type = match machine_type {
                MachineKind::Standard => stepstone::asl::MachineType::Standard,
                MachineKind::Express => stepstone::asl::MachineType::Express,
            };
            cli::validate::run(&file, json, machine_type)
        }
        Command::Graph { file, format } => {
            let format = match format {
                GraphFormat::Mermaid => stepstone::asl::graph::Format::Mermaid,
                GraphFormat::Dot => stepstone::asl::graph::Format::Dot,
            };
            cli::graph::run(&file, format)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stepstone: {e}");
            ExitCode::from(2)
        }
    }
}
