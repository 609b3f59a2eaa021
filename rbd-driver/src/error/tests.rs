use super::*;

#[test]
fn errno_classification_tells_the_kinds_apart() {
    let cases = [
        (libc::ENOENT, ErrorKind::NotFound),
        (libc::EEXIST, ErrorKind::AlreadyExists),
        (libc::EBUSY, ErrorKind::Busy),
        (libc::ENOTEMPTY, ErrorKind::HasDependents),
        (libc::ECANCELED, ErrorKind::Cancelled),
        (libc::ETIMEDOUT, ErrorKind::TimedOut),
        (libc::ENOTCONN, ErrorKind::Unavailable),
        (libc::ESHUTDOWN, ErrorKind::Unavailable),
        (libc::EINVAL, ErrorKind::InvalidInput),
        (libc::EPERM, ErrorKind::PermissionDenied),
        (libc::EACCES, ErrorKind::PermissionDenied),
        (libc::EIO, ErrorKind::Other),
    ];
    for (errno, kind) in cases {
        assert_eq!(kind_of_errno(errno), kind, "errno {errno}");
    }
}

#[test]
fn a_cancelled_librbd_call_becomes_the_cancelled_error() {
    let e = Error::rbd("rbd_flatten_with_progress", "rbd/x", libc::ECANCELED);
    assert!(matches!(e, Error::Cancelled));
    assert_eq!(e.kind(), ErrorKind::Cancelled);
}

#[test]
fn error_messages_name_the_call_and_target() {
    let e = Error::rbd("rbd_open", "rbd/volume-1", libc::ENOENT);
    let s = e.to_string();
    assert!(
        s.contains("rbd_open") && s.contains("rbd/volume-1") && s.contains("errno 2"),
        "{s}"
    );
}
