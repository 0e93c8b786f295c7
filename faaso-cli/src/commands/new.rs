//! `faaso new`: a new funko folder from a runtime's template, or the list of runtimes.

use std::path::PathBuf;

use clap::Args;

use super::Global;

/// Create a new funko from a runtime's template (or list the runtimes)
#[derive(Debug, Args)]
#[command(
    after_help = "The folder's name is the funko's name: 1 to 48 characters from a-z, 0-9 and _.\n\
Example: faaso new -r flask hello"
)]
pub struct NewArgs {
    /// The runtime: a built-in name (see --list) or a path to a runtime folder
    #[arg(short, long, required_unless_present = "list",
          add = clap_complete::engine::ArgValueCandidates::new(super::complete::runtimes))]
    runtime: Option<String>,
    /// The folder to create
    #[arg(required_unless_present = "list")]
    folder: Option<PathBuf>,
    /// List the built-in runtimes
    #[arg(long, conflicts_with_all = ["runtime", "folder"])]
    list: bool,
}

impl NewArgs {
    pub fn run(self, global: &Global) -> anyhow::Result<()> {
        if self.list {
            let names = faaso::build::runtime::builtin_names();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            for name in names {
                let description = faaso::build::runtime::Runtime::builtin(name)
                    .map(|r| r.description())
                    .unwrap_or_default();
                println!("{name:width$}  {description}");
            }
            return Ok(());
        }
        let (Some(runtime), Some(folder)) = (self.runtime, self.folder) else {
            anyhow::bail!("give a runtime (-r) and a folder, or --list");
        };
        let name = faaso::build::scaffold::new_funko(&runtime, &folder)?;
        global.ui().note(format!(
            "created funko {name} in {} (runtime {runtime}); next: faaso build {}",
            folder.display(),
            folder.display()
        ));
        Ok(())
    }
}
