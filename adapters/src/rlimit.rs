//! The open-file limit, raised at start from its soft value to its hard one, as Go's runtime has
//! done since Go 1.19 for every program (so the original programs did). Every connection costs a
//! descriptor: under containerd 2.x's defaults (soft 1024, hard 524288) the soft limit alone
//! stopped the webhook near a thousand connections.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft open-file limit to the hard limit, and logs the figure at `--v=2`. A failure
/// is logged and otherwise ignored: the program works, with fewer connections.
pub fn raise_open_files_limit() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(cause) => {
            tracing::warn!(%cause, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return;
        }
    };
    if soft >= hard {
        tracing::debug!(
            limit = soft,
            "open-file limit: the soft limit is the hard limit"
        );
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::debug!(
            limit = hard,
            was = soft,
            "open-file limit raised to the hard limit"
        ),
        Err(cause) => tracing::warn!(
            soft,
            hard,
            %cause,
            "cannot raise the open-file limit (RLIMIT_NOFILE) to the hard limit: keeping the soft one"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("the limits");
        // Below the hard limit first, as containerd starts a container.
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(1024) - 1, hard).expect("a lower soft limit");
        raise_open_files_limit();
        assert_eq!(
            getrlimit(Resource::RLIMIT_NOFILE).expect("the limits"),
            (hard, hard)
        );
    }
}
