//! Netlink errors become domain errors here, at the seam.

use domain::sidecar::model::NetError;

/// The errno of a netlink NACK, if `error` is one.
pub(super) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

/// Translates a failed request; `operation` says what was attempted, as `ip` would be asked.
pub(super) fn translate(operation: &str, error: &rtnetlink::Error) -> NetError {
    match errno(error) {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::PermissionDenied {
            operation: operation.to_owned(),
        },
        Some(code) => NetError::Failed {
            operation: operation.to_owned(),
            message: std::io::Error::from_raw_os_error(code).to_string(),
        },
        None => NetError::Failed {
            operation: operation.to_owned(),
            message: error.to_string(),
        },
    }
}

/// Runs a request whose listed errnos mean "already as wanted" (for example `EEXIST` on an add).
pub(super) fn tolerating(
    result: Result<(), rtnetlink::Error>,
    operation: &str,
    fine: &[i32],
) -> Result<(), NetError> {
    match result {
        Err(error) if errno(&error).is_some_and(|code| fine.contains(&code)) => Ok(()),
        other => other.map_err(|error| translate(operation, &error)),
    }
}
