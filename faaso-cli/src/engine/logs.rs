//! `faaso logs`: the logs of all of a funko's instances as one stream, each line prefixed with
//! its instance (see [`crate::engine::containers`] and [`crate::engine::swarm`] for how each
//! orchestrator reads them).

use crate::conventions::validate_name;
use crate::engine::{Lifecycle, LifecycleError, LogLine, Orchestrate};

impl Lifecycle {
    /// Passes every log line of the funko's instances to `out`. With `follow` it returns only
    /// when the Docker connection ends (callers stop it by dropping the future, e.g. on Ctrl-C).
    pub async fn logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        self.backend().logs(funko, follow, tail, out).await
    }
}
